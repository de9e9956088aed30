"""The commands without a broker: help, configuration errors, baseline from a CSV."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "driftline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize("command", [[], ["worker"], ["demo"], ["baseline"], ["kafka"]])
def test_help_explains_each_command(command: list[str]) -> None:
    out = cli(*command, "--help")
    assert out.returncode == 0
    assert "usage: driftline" in out.stdout and len(out.stdout) > 300


def test_worker_with_bad_config_fails_fast_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  eta:\n    task: regression\n    features: {a: float}\n")
    out = cli("worker", "--config", str(path))
    assert out.returncode == 2
    assert (
        f"{path}: models.eta.features.a: Input should be 'numeric' or 'categorical'" in out.stderr
    )


def test_baseline_writes_a_profile_from_csv(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    lines = ["a,city,prediction,label"] + [f"{i % 17},c{i % 3},{i},{i + 1}" for i in range(300)]
    data.write_text("\n".join(lines))
    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n  m:\n    task: regression\n    reference: m.json\n"
        "    features: {a: numeric, city: categorical}\n"
    )
    out = cli("baseline", "--config", str(config), "--model", "m", "--data", str(data))
    assert out.returncode == 0, out.stderr
    from driftline.detectors.profile import ReferenceProfile

    profile = ReferenceProfile.from_json((tmp_path / "m.json").read_bytes())
    assert profile.n_rows == 300 and profile.performance["mae"] == 1.0
    assert profile.features["city"].categories == ("c0", "c1", "c2")
    # 300 rows are too few for the changes the detectors watch: said, with the rows needed
    warnings = [line for line in out.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "driftline: warning: feature a: 300 reference rows are too few: mean shifts below "
        "0.35 sd are not caught; 576 rows would do",
        "driftline: warning: feature city: 300 reference rows are too few: category "
        "frequencies known to within +-0.082; 800 rows would do",
        "driftline: warning: feature _prediction: 300 reference rows are too few: mean shifts "
        "below 0.35 sd are not caught; 576 rows would do",
    ]


def test_an_unwritable_data_dir_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"worker:\n  data_dir: {blocker / 'worker'}\n"
        "models:\n  m:\n    task: regression\n    features: {a: numeric}\n"
    )
    out = cli("worker", "--config", str(config))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"driftline: configuration error: {config}: worker.data_dir: {blocker / 'worker'} "
        "cannot be created or written (Not a directory); set worker.data_dir to a writable "
        "directory"
    ]
