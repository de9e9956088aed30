"""A single-node Apache Kafka broker (KRaft) on loopback, for the demo and the tests.

The jars come from Maven Central through ``kafka/pom.xml`` (fetched by ``make setup`` into
``.kafka/lib``); this module writes a one-node config, formats the storage once, starts the JVM,
waits until the broker answers a metadata request and stops it with SIGTERM (a clean shutdown).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOME = PROJECT_ROOT / ".kafka"

_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}{listeners}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}{advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,\
SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL
log.dirs={log_dir}
num.partitions=1
auto.create.topics.enable=true
# One node: internal topics cannot have more than one replica. These make Faust's
# exactly-once mode (transactions) and consumer groups work on a single broker.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=16777216
log.retention.hours=24
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=8388608
"""

# More listeners that authenticate (SASL PLAIN and SCRAM; users in ``sasl_users``) or encrypt
# (TLS, with the certificate in ``tls_dir``), to test the clients' security settings against a
# real broker.
_SASL_PROPERTIES = """\
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
"""
_SASL_LISTENER_PROPERTIES = """\
listener.name.{listener}.plain.sasl.jaas.config=\\
  org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};
listener.name.{listener}.scram-sha-256.sasl.jaas.config=\\
  org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.{listener}.scram-sha-512.sasl.jaas.config=\\
  org.apache.kafka.common.security.scram.ScramLoginModule required;
"""
# broker.pem: the private key (PKCS#8, unencrypted) followed by the certificate chain
_TLS_PROPERTIES = """\
ssl.keystore.type=PEM
ssl.keystore.location={tls_dir}/broker.pem
"""

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")

_LOG4J2 = """\
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
"""


class LocalKafkaError(RuntimeError):
    """The local broker could not be set up or did not start."""


@dataclass(frozen=True)
class LocalKafka:
    """Where a local broker lives and listens. ``home`` holds lib/ (jars) and the data dirs."""

    port: int = 19092
    controller_port: int = 19093
    home: Path = DEFAULT_HOME
    name: str = "default"
    sasl_port: int | None = None  # a SASL_PLAINTEXT listener there, for these users
    sasl_users: tuple[tuple[str, str], ...] = ()  # (name, password)
    tls_dir: Path | None = None  # its broker.pem is the certificate of the TLS listeners
    ssl_port: int | None = None  # an SSL listener there (needs tls_dir)
    sasl_ssl_port: int | None = None  # a SASL_SSL listener there (needs tls_dir, sasl_users)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ssl_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @property
    def run_dir(self) -> Path:
        return self.home / "run" / self.name

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "server.log"

    def _classpath(self) -> str:
        if not any(self.lib_dir.glob("kafka_2.13-*.jar")):
            raise LocalKafkaError(
                f"no Kafka jars in {self.lib_dir}: run `make setup` (it fetches them from "
                "Maven Central with kafka/pom.xml)"
            )
        return str(self.lib_dir / "*")

    def _write_config(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        props = self.run_dir / "server.properties"
        extra = [
            f"{protocol}://127.0.0.1:{port}"
            for protocol, port in (
                ("SASL_PLAINTEXT", self.sasl_port),
                ("SSL", self.ssl_port),
                ("SASL_SSL", self.sasl_ssl_port),
            )
            if port
        ]
        listeners = "".join(f",{listener}" for listener in extra)
        text = _SERVER_PROPERTIES.format(
            port=self.port,
            controller_port=self.controller_port,
            log_dir=self.run_dir / "data",
            listeners=listeners,
            advertised=listeners,
        )
        sasl_listeners = [
            name
            for name, port in (("sasl_plaintext", self.sasl_port), ("sasl_ssl", self.sasl_ssl_port))
            if port
        ]
        if sasl_listeners:
            users = " ".join(f'user_{name}="{password}"' for name, password in self.sasl_users)
            text += _SASL_PROPERTIES
            for listener in sasl_listeners:
                text += _SASL_LISTENER_PROPERTIES.format(listener=listener, plain_users=users)
        if self.ssl_port or self.sasl_ssl_port:
            if self.tls_dir is None:
                raise LocalKafkaError("TLS listeners need tls_dir (with broker.pem)")
            text += _TLS_PROPERTIES.format(tls_dir=self.tls_dir)
        props.write_text(text)
        (self.run_dir / "log4j2.properties").write_text(_LOG4J2.format(log_file=self.log_file))
        return props

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.run_dir / 'log4j2.properties'}",
            "-cp",
            self._classpath(),
            main,
            *args,
        ]

    def running_pid(self) -> int | None:
        """The pid of this broker if its process is alive, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self, timeout: float = 90.0, fresh: bool = False) -> None:
        """Start the broker unless it already runs; format storage on first use."""
        if self.running_pid() is not None and _port_open(self.port):
            return
        if fresh and self.run_dir.exists():
            _remove_tree(self.run_dir)
        props = self._write_config()
        if not (self.run_dir / "data" / "meta.properties").exists():
            cluster_id = _kafka_uuid()
            fmt = subprocess.run(
                # One token: an id may start with "-" (base64url), which would read as an option.
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    f"--config={props}",
                    # SCRAM credentials live in the cluster metadata: written at format time
                    *(
                        f"--add-scram={mechanism}=[name={name},password={password}]"
                        for name, password in self.sasl_users
                        for mechanism in SCRAM_MECHANISMS
                    ),
                ),
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise LocalKafkaError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        if _port_open(self.port) or _port_open(self.controller_port):
            raise LocalKafkaError(
                f"port {self.port} or {self.controller_port} is taken by another process"
            )
        stdout = (self.run_dir / "stdout.log").open("ab")
        proc = subprocess.Popen(
            self._java("kafka.Kafka", str(props)),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the launching shell (scripts/kafka.sh start)
        )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalKafkaError(
                    f"Kafka exited with code {proc.returncode}; see {self.log_file} and "
                    f"{self.run_dir / 'stdout.log'}"
                )
            if _port_open(self.port) and _metadata_ok(self.bootstrap_servers):
                return
            time.sleep(0.3)
        self.stop()
        raise LocalKafkaError(f"Kafka did not answer on {self.bootstrap_servers} in {timeout}s")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker with SIGTERM (controlled shutdown), SIGKILL after ``timeout``."""
        pid = self.running_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child, so that it does not linger as a zombie.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kafka_uuid() -> str:
    # Kafka cluster ids are 16 random bytes in URL-safe base64 without padding.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _metadata_ok(bootstrap: str) -> bool:
    from kafka.errors import KafkaError

    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m driftline.runtime.localkafka start|stop|status [--port N]``
    (scripts/kafka.sh)."""
    import argparse

    parser = argparse.ArgumentParser(prog="driftline-kafka", description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=19092)
    parser.add_argument("--name", default="default", help="separate data dir per name")
    parser.add_argument("--fresh", action="store_true", help="wipe the data dir before start")
    args = parser.parse_args(argv)
    kafka = LocalKafka(port=args.port, controller_port=args.port + 1, name=args.name)
    if args.action == "start":
        kafka.start(fresh=args.fresh)
        print(f"Kafka is up on {kafka.bootstrap_servers} (logs: {kafka.log_file})")
    elif args.action == "stop":
        kafka.stop()
        print("Kafka stopped")
    else:
        pid = kafka.running_pid()
        print(f"running, pid {pid}, {kafka.bootstrap_servers}" if pid else "not running")
        return 0 if pid else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
