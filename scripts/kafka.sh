#!/usr/bin/env bash
# Start, stop or check the local single-node Apache Kafka (KRaft, 127.0.0.1:19092).
# Usage: scripts/kafka.sh start|stop|status [--port N] [--fresh]
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m driftline.runtime.localkafka "$@"
