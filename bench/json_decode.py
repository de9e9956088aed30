"""orjson vs the standard library on one 500-event batch (25 features), side by side.

Usage: ``.venv/bin/python bench/json_decode.py``. Why the README chose orjson.
"""

from __future__ import annotations

import json
import sys
import timeit
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput import messages


def main() -> None:
    print("| form | bytes | json ms | orjson ms | ratio |")
    print("|---|---|---|---|---|")
    for label, columnar in [("row batch", False), ("columnar batch", True)]:
        message = messages(500, 500, np.random.default_rng(0), columnar)[0]
        std = min(timeit.repeat(lambda m=message: json.loads(m), number=50, repeat=5)) / 50
        fast = min(timeit.repeat(lambda m=message: orjson.loads(m), number=50, repeat=5)) / 50
        print(
            f"| {label} | {len(message):,} | {std * 1e3:.2f} | {fast * 1e3:.2f} | "
            f"{std / fast:.1f}x |"
        )


if __name__ == "__main__":
    main()
