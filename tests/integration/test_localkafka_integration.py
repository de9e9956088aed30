"""The local broker script itself."""

from __future__ import annotations

import os

import pytest

from driftline.runtime import localkafka
from driftline.runtime.localkafka import LocalKafka


@pytest.mark.kafka  # starts a broker of its own
@pytest.mark.skipif(bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")), reason="external broker")
def test_a_cluster_id_starting_with_a_dash_formats_and_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # base64url ids start with "-" one time in 64; the storage tool once read that as an option
    monkeypatch.setattr(localkafka, "_kafka_uuid", lambda: "-AbCdEfGhIjKlMnOpQrStU")
    kafka = LocalKafka(port=29292, controller_port=29293, name="dash-id")
    kafka.start(fresh=True)
    try:
        assert kafka.running_pid() is not None
        meta = (kafka.run_dir / "data" / "meta.properties").read_text()
        assert "cluster.id=-AbCdEfGhIjKlMnOpQrStU" in meta
    finally:
        kafka.stop()
    assert kafka.running_pid() is None
