"""Real KRaft brokers on this machine, from Maven Central jars and Java 17: one node by
default, or a cluster of several on loopback ports (``KAFKA_LOCAL_BROKERS``).

The jars are resolved by Maven into the local Maven repository (outside the clone) from
``infra/kafka/pom.xml``; the resolved classpath is cached under the cache folder, keyed by
the pom's content, so later starts need no Maven at all.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import KafkaSettings, PlatformSettings

log = logging.getLogger(__name__)

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra" / "kafka"


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or reached."""


def pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:16]


def broker_classpath(cache_dir: Path, infra_dir: Path = INFRA_DIR) -> str:
    """Resolve the broker's jars with Maven once, then reuse the cached classpath."""
    return maven_classpath(infra_dir / "pom.xml", cache_dir / "kafka", "the Kafka broker")


def classpath_file(pom: Path, cache: Path) -> Path:
    """Where ``maven_classpath`` keeps ``pom``'s classpath."""
    return cache / f"classpath-{pom_digest(pom)}.txt"


def maven_classpath(pom: Path, cache: Path, what: str) -> str:
    """The classpath of ``pom``'s dependencies: resolved by Maven into the local Maven
    repository the first time, cached in ``cache`` by the pom's content after that."""
    cp_file = classpath_file(pom, cache)
    if cp_file.exists():
        cp = cp_file.read_text().strip()
        if cp and all(Path(p).exists() for p in cp.split(os.pathsep)):
            return cp
    cp_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cp_file.with_suffix(".tmp")
    log.info("fetching the jars of %s with Maven (first start only)", what)
    _maven(pom, what, "dependency:build-classpath", f"-Dmdep.outputFile={tmp}")
    if not tmp.exists():
        raise BrokerError(f"Maven wrote no classpath for {what}")
    tmp.replace(cp_file)
    return cp_file.read_text().strip()


def maven_folder(pom: Path, folder: Path, what: str) -> Path:
    """``folder`` holding the jars of ``pom``'s dependencies (a Connect plugin), copied by
    Maven the first time; key ``folder`` by ``pom_digest(pom)``."""
    if (folder / ".complete").exists():
        return folder
    log.info("fetching the jars of %s with Maven (first start only)", what)
    shutil.rmtree(folder, ignore_errors=True)
    _maven(
        pom,
        what,
        "dependency:copy-dependencies",
        f"-DoutputDirectory={folder}",
        "-DincludeScope=runtime",
    )
    (folder / ".complete").touch()
    return folder


def _maven(pom: Path, what: str, *goal: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(f"Maven (mvn) is needed once to fetch the jars of {what}; install it")
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), *goal], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BrokerError(f"Maven could not resolve {what}:\n{proc.stdout}\n{proc.stderr}")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers_metadata(bootstrap: str, timeout_s: float = 5.0, brokers: int = 1) -> bool:
    """True when a Kafka cluster at ``bootstrap`` (any of its addresses) answers a metadata
    request and reports at least ``brokers`` brokers."""
    from kafka.admin import KafkaAdminClient

    def listening(address: str) -> bool:
        host, _, port = address.strip().rpartition(":")
        return port_open(host or "127.0.0.1", int(port))

    # only the addresses that listen: kafka-python logs an ERROR for each one it cannot reach
    live = [a for a in bootstrap.split(",") if listening(a)]
    if not live:
        return False
    bootstrap = ",".join(live)
    # a probe expects to fail while nodes come up or go: kafka-python's connection errors
    # would be ERROR lines on the terminal of `llmops kafka start`
    library = logging.getLogger("kafka")
    level = library.level
    library.setLevel(logging.CRITICAL)
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            client_id="llmops-probe",
        )
        return len(admin.describe_cluster()["brokers"]) >= brokers
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    finally:
        if admin is not None:
            admin.close()
        library.setLevel(level)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JavaService:
    """A Java server this project starts in the background (a broker, a Connect worker),
    known by its pid file and the configuration file its command line names."""

    # the main class its command line names (how its pid is told from a reused one)
    MAIN_CLASS = ""
    _proc: subprocess.Popen[bytes] | None

    @property
    def pid_file(self) -> Path:
        """Where the pid is kept."""
        raise NotImplementedError

    @property
    def config_file(self) -> Path:
        """The configuration, as an absolute path (it names the process)."""
        raise NotImplementedError

    @property
    def log_file(self) -> Path:
        """The process's own log."""
        raise NotImplementedError

    def pid(self) -> int | None:
        """Pid of our process if it is alive: a zombie, or a pid now used by another program
        (pids are reused), counts as gone."""
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        if self._proc is not None and self._proc.pid == pid and self._proc.poll() is not None:
            return None  # our own child, exited (poll reaps it)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid if is_ours(pid, self.MAIN_CLASS, self.config_file) else None

    def spawn(self, classpath: str, heap: str, config: Path, log_file: Path) -> None:
        """Start ``MAIN_CLASS`` on ``config`` in the background, its log appended to
        ``log_file``."""
        command = [
            "java",
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={INFRA_DIR / 'log4j2.properties'}",
            "-cp",
            classpath,
            self.MAIN_CLASS,
            str(config),
        ]
        with log_file.open("ab") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the CLI that started it
            )
        self._proc = proc
        self.pid_file.write_text(str(proc.pid))
        # The process outlives this one, but while this one lives it is its parent: a
        # process that dies would stay a zombie (alive to kill(pid, 0)) until reaped, and a
        # later start would wait for it in vain.
        threading.Thread(target=proc.wait, name="java-reaper", daemon=True).start()

    def wait_for(self, ready: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``ready()``; False when the time is up or the process died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return True
            if self.pid() is None:
                break
            time.sleep(0.5)
        return False

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's log (what a failed start shows)."""
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""

    def kill(self) -> bool:
        """SIGKILL the process, as a crash would; return True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.05)
        return True

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the process cleanly (SIGTERM, then SIGKILL); return True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


@dataclass
class LocalBroker(JavaService):
    """One broker process whose state lives in ``run_dir``: a cluster of its own, or node
    ``node_id`` of a cluster whose controllers are ``voters``."""

    MAIN_CLASS = "kafka.Kafka"
    run_dir: Path
    port: int
    controller_port: int
    cache_dir: Path
    heap: str = "512m"
    start_timeout_s: float = 90.0
    node_id: int = 1
    # controller.quorum.voters; empty: this node alone
    voters: str = ""
    # replicas of the broker's internal topics (consumer offsets, transactions), and its
    # default min.insync.replicas (what faust's own topics get)
    replication: int = 1
    min_insync: int = 1
    cluster_id: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        """Client address."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "broker.pid"

    @property
    def config_file(self) -> Path:
        """The broker's configuration, as an absolute path (it names the broker's process)."""
        return (self.run_dir / "server.properties").resolve()

    @property
    def log_file(self) -> Path:
        """The broker's own log."""
        return self.run_dir / "broker.log"

    def status(self) -> str:
        """``running`` (answers metadata), ``starting`` (process alive) or ``stopped``."""
        if answers_metadata(self.bootstrap, timeout_s=3):
            return "running"
        return "starting" if self.pid() else "stopped"

    def _write_config(self) -> Path:
        template = (INFRA_DIR / "server.properties").read_text()
        cfg = (
            template.replace("@PORT@", str(self.port))
            .replace("@CONTROLLER_PORT@", str(self.controller_port))
            .replace("@DATA_DIR@", str((self.run_dir / "data").resolve()))
            .replace("@NODE_ID@", str(self.node_id))
            .replace("@VOTERS@", self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}")
            .replace("@REPLICATION@", str(self.replication))
            .replace("@MIN_ISR@", str(self.min_insync))
        )
        self.config_file.write_text(cfg)
        return self.config_file

    def _format(self, classpath: str, config: Path) -> None:
        if (self.run_dir / "data" / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or base64_uuid()
        proc = subprocess.run(
            [
                "java",
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                # one argument: an id may start with "-", which argparse would take for a flag
                f"--cluster-id={cluster_id}",
                "-c",
                str(config),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BrokerError(
                f"formatting the broker's storage failed:\n{proc.stdout}{proc.stderr}"
            )

    def start(self) -> bool:
        """Start the broker unless one already answers; return True if this call started it."""
        if answers_metadata(self.bootstrap, timeout_s=3):
            log.debug("a broker already answers on %s; reusing it", self.bootstrap)
            return False
        self.launch()
        self.wait_ready()
        return True

    def launch(self) -> None:
        """Start the broker's process unless it runs (without waiting for it to answer: a
        node of a cluster cannot answer before a majority of its controllers runs)."""
        if self.pid() is None and port_open("127.0.0.1", self.port):
            raise BrokerError(f"port {self.port} is taken by something that is not a Kafka broker")
        if shutil.which("java") is None:
            raise BrokerError("Java 17 or newer is needed to run the local Kafka broker")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.pid() is None:
            classpath = broker_classpath(self.cache_dir)
            config = self._write_config()
            self._format(classpath, config)
            self.spawn(classpath, self.heap, config, self.log_file)

    def wait_ready(self) -> None:
        """Block until the broker answers metadata, or raise with the log's tail."""
        if not self.wait_for(lambda: answers_metadata(self.bootstrap, 3), self.start_timeout_s):
            raise BrokerError(
                f"the local broker did not come up on {self.bootstrap}:\n{self.log_tail()}"
            )


def is_our_broker(pid: int, config: Path) -> bool:
    """Whether ``pid`` is a live Kafka broker started with ``config``."""
    return is_ours(pid, LocalBroker.MAIN_CLASS, config)


def is_ours(pid: int, main_class: str, config: Path) -> bool:
    """Whether ``pid`` is a live ``main_class`` started with ``config``: not a zombie (dead,
    not yet reaped by its parent), not another program that got the pid since. Where /proc
    cannot tell (another OS), a live pid counts."""
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    state = stat.rpartition(")")[2].split()[0]  # the name in parentheses may hold spaces
    if state in ("Z", "X"):
        return False
    return main_class.encode() in cmdline and str(config).encode() in cmdline


def base64_uuid() -> str:
    """A KRaft cluster id: a UUID in URL-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def local_broker(
    data_dir: Path,
    cache_dir: Path,
    port: int,
    controller_port: int,
    heap: str = "512m",
    start_timeout_s: float = 90.0,
) -> LocalBroker:
    """The broker whose state lives under ``data_dir/kafka``."""
    return LocalBroker(
        run_dir=data_dir / "kafka",
        port=port,
        controller_port=controller_port,
        cache_dir=cache_dir,
        heap=heap,
        start_timeout_s=start_timeout_s,
    )


@dataclass
class LocalCluster:
    """Several KRaft nodes on loopback ports, each broker and controller, one cluster id;
    their state under ``run_dir/node-N``. Internal topics are replicated as the platform's
    own (``Replication.resolve`` on this many brokers)."""

    run_dir: Path
    nodes: list[LocalBroker]

    @property
    def bootstrap(self) -> str:
        """Every node's client address."""
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def log_file(self) -> Path:
        """The first node's log (each node has its own beside its data)."""
        return self.nodes[0].log_file

    def pid(self) -> int | None:
        """The first live node's pid."""
        return next((p for n in self.nodes if (p := n.pid()) is not None), None)

    def status(self) -> str:
        """``running`` (every node in the cluster's metadata), ``starting`` (a node's process
        alive) or ``stopped``."""
        if answers_metadata(self.bootstrap, timeout_s=3, brokers=len(self.nodes)):
            return "running"
        return "starting" if self.pid() else "stopped"

    def start(self) -> bool:
        """Start every node of ours that is not running (one killed comes back with its
        data), then wait until all are in the cluster; True if this call started one. A
        cluster that answers on these ports with no node of ours running is reused."""
        ours = [n for n in self.nodes if n.pid() is not None]
        if not ours and answers_metadata(self.bootstrap, timeout_s=3, brokers=len(self.nodes)):
            return False
        started = [n for n in self.nodes if n.pid() is None]
        for n in started:
            n.launch()
        self.wait_ready()
        return bool(started)

    def wait_ready(self) -> None:
        """Block until every node is in the cluster's metadata, or raise with the logs."""
        deadline = time.monotonic() + self.nodes[0].start_timeout_s
        while time.monotonic() < deadline:
            # every node listening: a node just killed stays in the metadata for seconds
            listening = all(port_open("127.0.0.1", n.port) for n in self.nodes)
            if listening and answers_metadata(self.bootstrap, 3, brokers=len(self.nodes)):
                return
            time.sleep(0.5)
        tails = "\n".join(
            f"node {n.node_id}: " + n.log_file.read_text(errors="replace")[-1500:]
            for n in self.nodes
            if n.log_file.exists()
        )
        raise BrokerError(f"the local cluster did not come up on {self.bootstrap}:\n{tails}")

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop every node cleanly; True if one was running."""
        return any([n.stop(timeout_s) for n in self.nodes])

    def busiest(self, topics: list[str]) -> LocalBroker:
        """The node that leads the most partitions of ``topics`` (the one whose loss moves
        the most leaders: what the chaos test and bench/cluster.py kill)."""
        from collections import Counter

        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            described = admin.describe_topics(topics)
        finally:
            admin.close()
        leaders = Counter(p["leader_id"] for t in described for p in t["partitions"])
        node = leaders.most_common(1)[0][0]
        return next(n for n in self.nodes if n.node_id == node)


def local_cluster(
    data_dir: Path,
    cache_dir: Path,
    ports: list[tuple[int, int]],
    heap: str = "512m",
    start_timeout_s: float = 90.0,
    factor: int | None = None,
    min_insync: int | None = None,
) -> LocalCluster | LocalBroker:
    """The nodes listening on ``ports`` (client, controller), their state under
    ``data_dir/kafka-cluster``; one pair is the single broker of ``local_broker``."""
    if len(ports) == 1:
        return local_broker(data_dir, cache_dir, *ports[0], heap, start_timeout_s)
    from shared.kafka.admin import Replication

    replication = Replication.resolve(factor, min_insync, len(ports))
    run_dir = data_dir / "kafka-cluster"
    id_file = run_dir / "cluster.id"
    if not id_file.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        id_file.write_text(base64_uuid())
    voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports, 1))
    nodes = [
        LocalBroker(
            run_dir=run_dir / f"node-{i}",
            port=p,
            controller_port=c,
            cache_dir=cache_dir,
            heap=heap,
            start_timeout_s=start_timeout_s,
            node_id=i,
            voters=voters,
            replication=replication.factor,
            min_insync=replication.min_insync,
            cluster_id=id_file.read_text().strip(),
        )
        for i, (p, c) in enumerate(ports, 1)
    ]
    return LocalCluster(run_dir, nodes)


def configured_broker(
    kafka: KafkaSettings, platform: PlatformSettings, brokers: int | None = None
) -> LocalCluster | LocalBroker:
    """The local broker, or cluster of ``brokers`` (default KAFKA_LOCAL_BROKERS), these
    settings describe (not started): node n on the ports after the first, two apart."""
    n = brokers or kafka.local_brokers
    ports = [(kafka.local_port + 2 * i, kafka.local_controller_port + 2 * i) for i in range(n)]
    return local_cluster(
        platform.data_dir,
        platform.cache_dir,
        ports,
        kafka.local_heap,
        kafka.start_timeout_s,
        kafka.replication_factor,
        kafka.min_insync_replicas,
    )


def ensure_kafka(kafka: KafkaSettings, platform: PlatformSettings) -> str:
    """The cluster to use: the configured one, else the local broker (or cluster), started if
    needed."""
    if kafka.bootstrap_servers:
        return kafka.bootstrap_servers
    broker = configured_broker(kafka, platform)
    broker.start()
    return broker.bootstrap
