"""The "your own model" guide, run as written: its files written, its commands run in order.

Conventions in the guide: `<!-- file: NAME -->` before a code block writes the block to NAME;
`<!-- skip: why -->` leaves a block out; every other ``sh`` block's lines are run with bash in
one folder, with the virtualenv's commands first on PATH and KAFKA_BOOTSTRAP_SERVERS set to
the test broker. A line ending in ``&`` starts a background process, stopped at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guides" / "your-own-model.md"

pytestmark = pytest.mark.kafka


@dataclass
class Block:
    language: str
    text: str
    directive: str  # "file: NAME", "skip: ...", or ""


def blocks(markdown: str) -> list[Block]:
    found, directive, lines = [], "", iter(markdown.splitlines())
    for line in lines:
        comment = re.fullmatch(r"<!-- (file: \S+|skip: .*) -->", line.strip())
        if comment:
            directive = comment.group(1)
        elif line.startswith("```"):
            body = []
            for inner in lines:
                if inner.startswith("```"):
                    break
                body.append(inner)
            found.append(Block(line[3:].strip(), "\n".join(body) + "\n", directive))
            directive = ""
    return found


def test_the_guide_has_the_blocks_this_test_expects() -> None:
    guide = blocks(GUIDE.read_text())
    written = [b.directive for b in guide if b.directive.startswith("file:")]
    assert written == ["file: make_data.py", "file: driftline.yaml", "file: service.py"]
    commands = [b.text.strip() for b in guide if b.language == "sh" and not b.directive]
    assert [c.split()[:2] for c in commands] == [
        ["python", "make_data.py"],
        ["driftline", "baseline"],
        ["driftline", "replay"],
        ["driftline", "worker"],
        ["python", "service.py"],
        ["kcat", "-b"],
    ]


def _wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise AssertionError(f"{path.name} did not say {text!r} in {timeout} s")


def test_the_your_own_model_guide_runs_as_written(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
    }
    background: list[subprocess.Popen[bytes]] = []
    try:
        for block in blocks(GUIDE.read_text()):
            if block.directive.startswith("file: "):
                (tmp_path / block.directive.removeprefix("file: ")).write_text(block.text)
            elif block.language == "sh" and not block.directive:
                for line in block.text.splitlines():
                    if line.rstrip().endswith("&"):
                        command = line.rstrip().removesuffix("&")
                        background.append(
                            subprocess.Popen(
                                ["bash", "-c", command],
                                cwd=tmp_path,
                                env=env,
                                start_new_session=True,
                            )
                        )
                        if command.split()[:2] == ["driftline", "worker"]:
                            _wait_for(tmp_path / "worker.log", "Worker ready", 120)
                        continue
                    done = subprocess.run(
                        ["bash", "-c", line],
                        cwd=tmp_path,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=180,
                    )
                    assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    finally:
        for process in background:
            os.killpg(process.pid, signal.SIGTERM)
        for process in background:
            process.wait(timeout=60)

    # what the guide says each step gives
    profile = json.loads((tmp_path / "churn.profile.json").read_text())
    assert profile["model_id"] == "churn"
    replayed = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    firing = [a for a in replayed if a["status"] == "firing"]
    assert [(a["kind"], a["feature"]) for a in firing] == [("drift", "monthly_spend")]
    live = json.loads((tmp_path / "first-alert.json").read_text())
    assert (live["kind"], live["feature"], live["alert_id"]) == (
        "drift",
        "monthly_spend",
        firing[0]["alert_id"],
    )
    log = (tmp_path / "worker.log").read_text()
    assert "[ERROR]" not in log and "Traceback" not in log
