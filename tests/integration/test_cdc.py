"""Database rows to searchable documents on the real parts: PostgreSQL (Debian's server, with
logical decoding), a Kafka Connect worker and the Debezium PostgreSQL connector (Maven
Central jars), the real broker, and the ingestion and embedding services reading a declared
mapping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer

from shared.contracts.events import DeadLetter, DocumentEvent, DocumentIndexed
from shared.contracts.topics import DOCS_INDEXED, INGEST_DLQ, INGEST_DOCUMENTS
from shared.kafka.broker import free_port
from shared.kafka.connect import LocalConnect
from shared.kafka.reader import end_offsets, records_from
from shared.settings import PlatformSettings, QdrantSettings
from shared.store.base import SearchMode
from shared.store.open import open_store
from shared.store.retrieval import retrieve
from tests.kafka_helpers import consume
from tests.postgres import Postgres

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

MAPPING = """\
tables:
  - topic: {topic}
    tenant: {{column: org}}
    doc_id: [id]
    doc_id_prefix: "t/"
    title: "Ticket {{id}}"
    content: "{{subject}}. {{body}}"
    acl: {{column: groups}}
    metadata: [status]
"""


def mapping_file(tmp_path: Path, topic: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING.format(topic=topic))
    return path


def newest_indexed(
    bootstrap: str,
    topic: str,
    start: dict[int, int],
    done: Callable[[dict[str, DocumentIndexed]], bool],
) -> dict[str, DocumentIndexed]:
    """The newest DocumentIndexed of each doc id on ``topic`` from ``start``, once ``done``
    holds for them (or three minutes have passed)."""
    newest: dict[str, DocumentIndexed] = {}
    for r in records_from(bootstrap, topic, start, timeout_s=180):
        e = DocumentIndexed.from_bytes(r.value)
        newest[e.doc_id] = e
        if done(newest):
            break
    return newest


def test_malformed_and_unmapped_records_are_dead_lettered_and_the_changes_around_them_pass(
    kafka_bootstrap: str, topic_prefix: str, start_service, tmp_path: Path
) -> None:
    topic = f"cdc{uuid.uuid4().hex[:8]}.public.tickets"
    start = end_offsets(kafka_bootstrap, DOCS_INDEXED.name(topic_prefix))
    service = start_service(
        "ingestion embedding", INGESTION_CDC_MAPPING_FILE=str(mapping_file(tmp_path, topic))
    )

    def change(op: str, row: dict[str, object], lsn: int) -> bytes:
        return json.dumps({"op": op, "after": row, "before": None, "source": {"lsn": lsn}}).encode()

    row = {"id": 1, "org": "acme", "subject": "A", "body": "b", "groups": [], "status": "open"}
    records = [
        change("c", row, 10),
        b"{not json",
        change("c", {k: v for k, v in row.items() if k != "body"} | {"id": 2}, 11),  # no body
        None,  # a tombstone: skipped
        change("u", row | {"id": 3}, 12),
    ]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i, value in enumerate(records):
        producer.send(topic, key=json.dumps({"id": i}).encode(), value=value, partition=0)
    producer.flush()
    producer.close()

    docs = consume(kafka_bootstrap, INGEST_DOCUMENTS.name(topic_prefix), until=2, timeout_s=120)
    got = sorted(DocumentEvent.from_bytes(r.value).doc_id for r in docs)
    assert got == ["t/1", "t/3"]
    letters = consume(kafka_bootstrap, INGEST_DLQ.name(topic_prefix), until=2, timeout_s=60)
    found = {d.offset: d for d in (DeadLetter.from_bytes(r.value) for r in letters)}
    assert sorted(found) == [1, 2]
    assert all(d.topic == topic and d.error_type == "CdcUnmappable" for d in found.values())
    assert "not JSON" in found[1].error_message and "no column 'body'" in found[2].error_message

    def both(newest: dict[str, DocumentIndexed]) -> bool:
        return newest.keys() >= {"t/1", "t/3"}

    assert both(newest_indexed(kafka_bootstrap, DOCS_INDEXED.name(topic_prefix), start, both))
    service.stop()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Postgres]:
    pg = Postgres(tmp_path / "pg", free_port())
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def connect_worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[LocalConnect]:
    worker = LocalConnect(
        run_dir=tmp_path / "connect",
        port=free_port(),
        bootstrap=kafka_bootstrap,
        cache_dir=PlatformSettings().cache_dir,
        group_id=f"connect-{uuid.uuid4().hex[:8]}",
    )
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def token(i: int, edition: int = 0) -> str:
    return f"zqrow{i}e{edition}"


def test_a_table_snapshot_then_live_inserts_updates_and_deletes_through_a_killed_worker(
    kafka_bootstrap: str,
    topic_prefix: str,
    start_service,
    service_env: dict[str, str],
    postgres: Postgres,
    connect_worker: LocalConnect,
    tmp_path: Path,
) -> None:
    name = f"cdc{uuid.uuid4().hex[:8]}"
    topic = f"{name}.public.tickets"

    def insert(ids: range) -> None:
        values = ",".join(
            f"({i}, 'acme', 'Row {i}', 'Mentions {token(i)} only.', "
            f"{'ARRAY[$$hr$$]' if i % 10 == 0 else 'ARRAY[]::text[]'}, 'open')"
            for i in ids
        )
        postgres.psql(f"INSERT INTO tickets VALUES {values};")

    postgres.psql(
        "CREATE TABLE tickets (id int PRIMARY KEY, org text, subject text, body text,"
        " groups text[], status text);"
        # the tenant comes from a column that is not the key: deletes must carry it
        "ALTER TABLE tickets REPLICA IDENTITY FULL;"
    )
    insert(range(50))  # rows already there: the connector's snapshot reads them
    start = end_offsets(kafka_bootstrap, DOCS_INDEXED.name(topic_prefix))
    service = start_service(
        "ingestion embedding", INGESTION_CDC_MAPPING_FILE=str(mapping_file(tmp_path, topic))
    )
    # added as a user adds it: the command line, the example file, the environment
    env = {
        **os.environ,
        "CONNECT_URL": connect_worker.url,
        "PGPORT": str(postgres.port),
        "PGPASSWORD": postgres.password,
        "CDC_TOPIC_PREFIX": name,
        "CDC_SLOT": name,
    }

    def connect(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", "connect", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            check=False,
        )

    added = connect("add", str(ROOT / "infra" / "connect" / "postgres.json"))
    assert added.returncode == 0 and "connector llmops-postgres added" in added.stdout, added.stderr
    insert(range(50, 199))
    postgres.psql(
        "INSERT INTO tickets VALUES (199, 'acme', 'Row 199', "
        f"'Mentions {token(199)}; write to jane.doe@example.com.', ARRAY[]::text[], 'open');"
    )

    indexed = DOCS_INDEXED.name(topic_prefix)

    def all_there(newest: dict[str, DocumentIndexed]) -> bool:
        return len(newest) == 200

    got = newest_indexed(kafka_bootstrap, indexed, start, all_there)
    assert all_there(got), f"indexed {len(got)} of 200"
    status = connect("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "llmops-postgres: RUNNING; task 0 RUNNING" in status.stdout, status.stdout

    # 20 updates and 20 deletes; the worker is killed after the first 10 updates and started
    # again while the rest wait in the replication slot
    updated, deleted = range(100, 120), range(150, 170)
    # read from here: an update indexed before the worker's restart counts too
    start2 = end_offsets(kafka_bootstrap, indexed)
    for i in updated[:10]:
        postgres.psql(f"UPDATE tickets SET body = 'Now {token(i, 1)}.' WHERE id = {i};")
    assert connect_worker.kill()
    for i in updated[10:]:
        postgres.psql(f"UPDATE tickets SET body = 'Now {token(i, 1)}.' WHERE id = {i};")
    postgres.psql(f"DELETE FROM tickets WHERE id >= {deleted[0]} AND id < {deleted[-1] + 1};")
    connect_worker.start()

    def changed(newest: dict[str, DocumentIndexed]) -> bool:
        return all(
            f"t/{i}" in newest
            and newest[f"t/{i}"].op == "upsert"
            and newest[f"t/{i}"].status in ("indexed", "unchanged")
            for i in updated
        ) and all(f"t/{i}" in newest and newest[f"t/{i}"].op == "delete" for i in deleted)

    assert changed(newest_indexed(kafka_bootstrap, indexed, start2, changed))
    time.sleep(3)  # anything the restarted worker sends again arrives meanwhile
    service.stop()

    store = open_store(
        QdrantSettings(),
        PlatformSettings(data_dir=Path(service_env["LLMOPS_DATA_DIR"])),
        topic_prefix,
    )
    try:

        def found(word: str, groups: list[str]) -> list[str]:
            hits = retrieve(store, word, "acme", groups, top_k=3, mode=SearchMode.SPARSE)
            return [h.doc_id for h in hits]

        live = [i for i in range(200) if i not in deleted]
        for i in live:
            word = token(i, 1 if i in updated else 0)
            assert found(word, ["hr"]) == [f"t/{i}"], i
            if i % 10 == 0:  # hr's rows: nobody else's key sees them
                assert found(word, ["sales"]) == [], i
        for i in [*updated, *deleted]:
            assert found(token(i), ["hr"]) == [], i
        # personal data is redacted before it is stored, as for any document
        (hit,) = retrieve(store, token(199), "acme", [], top_k=1, mode=SearchMode.SPARSE)
        assert "[EMAIL]" in hit.text and "jane.doe" not in hit.text
        # every change reached the index once: one point per live row, none twice
        collection = store.active()
        assert collection is not None
        points = [p.payload["doc_id"] for p in store.all_payloads(collection)]
        assert sorted(points) == sorted(f"t/{i}" for i in live)
    finally:
        store.close()
