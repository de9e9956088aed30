"""Every ordinary mistake is one line on stderr naming the file, line or column and what to
do, with exit 2 and no traceback (``--debug`` shows it); suspicious input needs a flag."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.unit.cli.test_cli import cli

CONFIG = (
    "models:\n  m:\n    task: binary\n    reference: m.json\n"
    "    features: {a: numeric, b: categorical}\n"
)
GOOD = "a,b,prediction,label,score\n1,x,1,1,0.9\n2,y,0,0,0.2\n3,x,1,0,0.6\n"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "c.yaml").write_text(CONFIG)
    (tmp_path / "good.csv").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_error(*args: str) -> str:
    out = cli(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.splitlines()
    return line


def notes(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("driftline: note:")]


def baseline(*args: str) -> list[str]:
    return ["baseline", "--config", "c.yaml", "--model", "m", *args]


def test_a_missing_feature_column(workdir: Path) -> None:
    (workdir / "train.csv").write_text("a,prediction,label\n1,1,0\n")
    assert one_line_error(*baseline("--data", "train.csv")) == (
        "driftline: train.csv: no column for feature(s) b (its columns: a, prediction, label); "
        "rename them in the file or in models.m.features"
    )


def test_a_value_that_is_not_a_number_names_its_line_and_column(workdir: Path) -> None:
    (workdir / "train.csv").write_text("a,b,prediction,label\n1,x,1,0\n\n2,y,0,0\nn/a,x,1,1\n")
    assert one_line_error(*baseline("--data", "train.csv")) == (
        "driftline: train.csv, line 5, column a: 'n/a' is not a number "
        "(models.m.features.a is numeric); fix the value, or leave it empty where it is missing"
    )
    (workdir / "train.jsonl").write_text('{"a": 1, "b": "x"}\n{"a": "one", "b": "y"}\n')
    assert one_line_error(*baseline("--data", "train.jsonl")) == (
        "driftline: train.jsonl, line 2, column a: 'one' is not a number "
        "(models.m.features.a is numeric); fix the value, or leave it empty where it is missing"
    )


def test_a_row_with_more_fields_than_the_header(workdir: Path) -> None:
    (workdir / "train.csv").write_text("a,b,prediction,label\n1,x,1,0\n2,y,0,0,7\n")
    assert one_line_error(*baseline("--data", "train.csv")) == (
        "driftline: train.csv, line 3: more fields than the header's 4; quote values that "
        "hold a comma"
    )


def test_a_missing_file_and_an_unsupported_type(workdir: Path) -> None:
    assert one_line_error(*baseline("--data", "nope.csv")) == "driftline: nope.csv: no such file"
    assert one_line_error(*baseline("--data", "train.xlsx")) == (
        "driftline: train.xlsx: unsupported data file type .xlsx; use .csv, .parquet or .jsonl"
    )


@pytest.mark.parametrize("role", ["prediction", "label", "score"])
def test_a_named_column_that_is_not_there(workdir: Path, role: str) -> None:
    assert one_line_error(*baseline("--data", "good.csv", f"--{role}-column", "y")) == (
        f"driftline: good.csv: no column 'y' (--{role}-column); its columns: "
        "a, b, prediction, label, score"
    )


def test_a_default_column_that_is_not_there_is_said_not_silent(workdir: Path) -> None:
    (workdir / "train.csv").write_text("a,b,prediction\n1,x,1\n2,y,0\n")
    out = cli(*baseline("--data", "train.csv"))
    assert out.returncode == 0, out.stderr
    assert notes(out.stderr) == [
        "driftline: note: no label column 'label' in train.csv: no label distribution and no "
        "baseline performance, so realised performance is not compared (name it with "
        "--label-column)",
        "driftline: note: no score column 'score' in train.csv: no calibration, so performance "
        "is not estimated before labels (name it with --score-column)",
    ]
    out = cli(*baseline("--data", "good.csv", "--label-column", "label"))
    assert out.returncode == 0 and notes(out.stderr) == [], out.stderr
    # what is left on stderr are the warnings that two rows are a small reference
    assert all("reference rows are too few" in line for line in out.stderr.splitlines())


def test_a_multiclass_model_needs_a_score_column_per_class(workdir: Path) -> None:
    (workdir / "c.yaml").write_text(CONFIG.replace("binary", "multiclass"))
    rows = "a,b,prediction,label,score_x,score_y\n1,x,x,x,0.8,0.1\n2,y,z,y,0.1,0.2\n"
    (workdir / "train.csv").write_text(rows)
    assert one_line_error(*baseline("--data", "train.csv")) == (
        "driftline: train.csv: no column score_z; a multiclass model's scores need a column "
        "score_<class> for each of its classes (x, y, z); its columns: a, b, prediction, "
        "label, score_x, score_y"
    )
    (workdir / "train.csv").write_text(rows.replace("score_", "p_"))
    out = cli(*baseline("--data", "train.csv"))
    assert out.returncode == 0, out.stderr
    assert notes(out.stderr) == [
        "driftline: note: no score columns score_<class> in train.csv: no calibration, so "
        "performance is not estimated before labels (name their prefix with --score-column)"
    ]
    assert one_line_error(*baseline("--data", "train.csv", "--score-column", "q")) == (
        "driftline: train.csv: no column q_x, q_y, q_z; a multiclass model's scores need a "
        "column q_<class> for each of its classes (x, y, z); its columns: a, b, prediction, "
        "label, p_x, p_y"
    )
    (workdir / "train.csv").write_text(
        "a,b,prediction,label,p_x,p_y,p_z\n1,x,x,x,0.8,0.1,0.1\n2,y,z,y,0.1,0.2,0.7\n"
    )
    out = cli(*baseline("--data", "train.csv", "--score-column", "p"))
    assert out.returncode == 0 and notes(out.stderr) == [], out.stderr
    profile = orjson.loads((workdir / "m.json").read_bytes())
    assert sorted(profile["calibration"]["classes"]) == ["x", "y", "z"]


def test_debug_shows_the_traceback(workdir: Path) -> None:
    for args in (
        ["--debug", *baseline("--data", "nope.csv")],
        baseline("--data", "nope.csv", "--debug"),
    ):
        out = cli(*args)
        assert out.returncode == 1
        assert "Traceback" in out.stderr and "InputError: nope.csv: no such file" in out.stderr


def test_replay_refuses_a_file_that_is_not_topic_messages(workdir: Path) -> None:
    assert cli(*baseline("--data", "good.csv")).returncode == 0
    replay = ["replay", "--config", "c.yaml", "--events"]
    assert one_line_error(*replay, "good.csv") == (
        "driftline: good.csv, line 1: not a JSON object; replay reads JSON lines, one "
        "predictions-topic message (an event or a batch) per line (a table of training data "
        "is for driftline baseline)"
    )
    assert one_line_error(*replay, "nope.jsonl") == "driftline: nope.jsonl: no such file"


def test_replay_of_a_model_without_reference_needs_a_flag(workdir: Path) -> None:
    (workdir / "c.yaml").write_text(CONFIG.replace("    reference: m.json\n", ""))
    (workdir / "events.jsonl").write_text(
        '{"model_id": "m", "model_version": "1", "prediction_id": "1", "timestamp": 1, '
        '"features": {"a": 1, "b": "x"}, "prediction": 1}\n'
    )
    replay = ["replay", "--config", "c.yaml", "--events", "events.jsonl"]
    assert one_line_error(*replay) == (
        "driftline: configuration error: c.yaml: models.m.reference: not set, so replay would "
        "check no drift; build one with driftline baseline, or pass --without-reference to "
        "replay data quality (and performance) only"
    )
    out = cli(*replay, "--without-reference")
    assert out.returncode == 0, out.stderr
    assert "replayed 1 messages, 1 events" in out.stderr
