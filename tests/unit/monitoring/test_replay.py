"""``driftline replay``'s reading of its files: two files merged into the worker's order."""

from __future__ import annotations

import orjson

from driftline.monitoring.replay import is_label_message, merged_by_time


def message(kind: str, t: float | str | None) -> bytes:
    event = {"prediction_id": f"{kind}{t}", "timestamp": t}
    if kind == "p":
        return orjson.dumps(event | {"model_id": "m", "features": {"x": 1.0}, "prediction": 1})
    return orjson.dumps({"model_id": "m", "events": [event | {"label": 1}]})


def names(values: list[bytes]) -> list[str]:
    out = []
    for value in values:
        doc = orjson.loads(value)
        out.append((doc["events"][0] if "events" in doc else doc)["prediction_id"])
    return out


def test_two_files_merge_by_their_messages_times_predictions_first_on_a_tie() -> None:
    predictions = [message("p", t) for t in (1.0, 2.0, 5.0, 9.0)]
    labels = [message("l", t) for t in (2.0, 3.0, "1970-01-01T00:00:06Z", 12.0)]
    merged = list(merged_by_time(predictions, labels))
    assert names(merged) == [
        "p1.0", "p2.0", "l2.0", "l3.0", "p5.0", "l1970-01-01T00:00:06Z", "p9.0", "l12.0"
    ]  # fmt: skip
    assert [is_label_message(v) for v in merged].count(True) == 4


def test_a_message_without_a_time_keeps_its_place_in_its_file() -> None:
    predictions = [message("p", 1.0), b"not json", message("p", None), message("p", 8.0)]
    labels = [message("l", 4.0)]
    merged = list(merged_by_time(predictions, labels))
    assert merged[:3] == predictions[:3] and merged[3] == labels[0] and merged[4] == predictions[3]
