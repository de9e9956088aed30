"""A bare Faust agent: iterates a topic's messages and does nothing else (bench/throughput.py).

Usage: ``python bench/bare_faust.py BOOTSTRAP TOPIC MESSAGES RESULT_FILE``. Writes to
RESULT_FILE the seconds and the CPU seconds from its first message to its last, then stops
itself. The same broker settings as the worker's Faust app, at-least-once (no transactions:
the floor a Faust agent costs, whatever the guarantee).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import faust
import orjson


def main() -> None:
    bootstrap, topic_name, total, result = sys.argv[1:5]
    wanted = int(total)
    app = faust.App(
        f"bare-faust-{os.getpid()}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=str(Path(result).parent / "bare-faust-data"),  # beside the result, not in cwd
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=16 * 1024 * 1024,
    )
    topic = app.topic(
        topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(topic)
    async def iterate(stream: faust.StreamT) -> None:
        seen = 0
        started = cpu_started = 0.0
        async for _ in stream:
            if seen == 0:
                started, cpu_started = time.perf_counter(), time.process_time()
            seen += 1
            if seen == wanted:
                took = (time.perf_counter() - started, time.process_time() - cpu_started)
                Path(result).write_bytes(orjson.dumps(took))
                os.kill(os.getpid(), signal.SIGTERM)  # the worker's own clean stop

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
