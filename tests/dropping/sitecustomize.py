"""Makes a worker's Faust consumer drop one fetched record, as Faust's fetch loop was seen to
(tests/integration/test_crash_integration.py puts this directory on the worker's PYTHONPATH).

DRIFTLINE_TEST_DROP_OFFSET: the offset of the predictions record to drop, once.
"""

import os

if os.environ.get("DRIFTLINE_TEST_DROP_OFFSET"):
    from collections.abc import AsyncIterator
    from typing import Any

    from faust.transport import consumer as _consumer

    _drop = int(os.environ["DRIFTLINE_TEST_DROP_OFFSET"])
    _getmany = _consumer.Consumer.getmany
    _dropped: list[int] = []

    async def _getmany_dropping(self: Any, timeout: float) -> AsyncIterator[Any]:
        async for tp, message in _getmany(self, timeout):
            if not _dropped and tp.topic.endswith(".predictions") and message.offset == _drop:
                _dropped.append(message.offset)
                continue
            yield tp, message

    _consumer.Consumer.getmany = _getmany_dropping  # type: ignore[method-assign]
