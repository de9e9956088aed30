"""The docs say what the code does: generated pages are current, examples load, lists are whole."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from driftline.cli.main import build_parser
from driftline.cli.reference_docs import generate
from driftline.config import config_from_dict
from driftline.events.codec import Reason

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def test_the_reference_pages_match_the_code() -> None:
    stale = generate(build_parser(), DOCS, check=True)
    assert stale == [], f"stale: {stale}; run .venv/bin/driftline docs generate"


def test_a_stale_reference_page_is_found(tmp_path: Path) -> None:
    generate(build_parser(), tmp_path, check=False)
    page = tmp_path / "reference" / "configuration.md"
    page.write_text(page.read_text().replace("`500`", "`400`", 1))
    assert generate(build_parser(), tmp_path, check=True) == [str(page)]
    assert generate(build_parser(), tmp_path, check=False) == [str(page)]
    assert generate(build_parser(), tmp_path, check=True) == []


def test_the_configuration_guide_example_is_a_valid_config() -> None:
    (example,) = [b for b in _blocks((DOCS / "configuration.md").read_text(), "yaml")]
    raw = yaml.safe_load(example)
    env = {"DRIFTLINE_KAFKA_PASSWORD": "x", "SLACK_ONCALL_WEBHOOK": "http://127.0.0.1:9/a"}
    env["RETRAIN_TRIGGER_URL"] = "http://127.0.0.1:9/b"
    config = config_from_dict(raw, source="docs/configuration.md", env=env)
    assert set(config.models) == {"eta"}
    assert config.models["eta"].performance.label_ttl_seconds == 86400


def test_every_dead_letter_reason_is_documented() -> None:
    table = (DOCS / "events.md").read_text().split("## Bad input", 1)[1]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.M))
    assert documented == set(Reason.ALL)


def test_every_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    missing = [p for p in sorted(pages) if f": {p}\n" not in nav]
    assert missing == []


def test_the_readme_lists_every_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    missing = [name for name in commands if f"driftline {name}" not in readme]
    assert missing == []
