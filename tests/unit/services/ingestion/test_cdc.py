"""The Debezium envelope and the declared mapping: rows to document events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.ingestion.cdc import (
    CdcMapping,
    MappingError,
    TableMapping,
    Unmappable,
    envelope,
    load_mapping,
)
from shared.contracts.events import Op

ROOT = Path(__file__).resolve().parents[4]
TOPIC = "pg.public.tickets"


def table(**over: Any) -> TableMapping:
    fields: dict[str, Any] = {
        "topic": TOPIC,
        "tenant": {"column": "org"},
        "doc_id": ["id"],
        "doc_id_prefix": "tickets/",
        "title": "Ticket {id}: {subject}",
        "content": "{subject}\n\n{body}",
        "acl": {"column": "groups"},
        "metadata": ["status"],
        "source": "postgres://helpdesk",
    }
    return TableMapping.model_validate({**fields, **over})


ROW = {
    "id": 7,
    "org": "acme",
    "subject": "Printer",
    "body": "Jams",
    "groups": ["it"],
    "status": "open",
}


def change(op: str, row: dict[str, Any] | None, lsn: int = 1000, **source: Any) -> bytes:
    before, after = (row, None) if op == "d" else (None, row)
    src = {"lsn": lsn, "ts_ms": 1_700_000_000_000, "table": "tickets", **source}
    return json.dumps({"before": before, "after": after, "op": op, "source": src}).encode()


def mapping(**over: Any) -> CdcMapping:
    return CdcMapping({TOPIC: table(**over)})


@pytest.mark.parametrize("op", ["c", "r", "u"])
def test_a_created_read_or_updated_row_is_an_upsert_of_after(op: str) -> None:
    doc = mapping().translate(TOPIC, 3, change(op, ROW, lsn=4242))
    assert doc is not None and doc.op == Op.UPSERT
    assert (doc.tenant, doc.doc_id, doc.version) == ("acme", "tickets/7", 4242)
    assert doc.title == "Ticket 7: Printer" and doc.content == "Printer\n\nJams"
    assert doc.acl == ["it"] and doc.metadata == {"status": "open"}
    assert doc.source == "postgres://helpdesk"


def test_a_deleted_row_is_a_delete_of_its_key() -> None:
    doc = mapping().translate(TOPIC, 4, change("d", {"id": 7, "org": "acme"}, lsn=5000))
    assert doc is not None and doc.op == Op.DELETE
    assert (doc.tenant, doc.doc_id, doc.version) == ("acme", "tickets/7", 5000)


def test_a_delete_without_the_tenant_column_says_what_to_change() -> None:
    with pytest.raises(Unmappable, match="REPLICA IDENTITY FULL"):
        mapping().translate(TOPIC, 4, change("d", {"id": 7}))
    # a constant tenant needs nothing more than the key
    doc = mapping(tenant={"value": "acme"}).translate(TOPIC, 4, change("d", {"id": 7}))
    assert doc is not None and doc.tenant == "acme"


def test_the_json_converter_with_schemas_is_read_too() -> None:
    payload = json.loads(change("c", ROW))
    wrapped = json.dumps({"schema": {"type": "struct", "fields": []}, "payload": payload})
    doc = mapping().translate(TOPIC, 0, wrapped.encode())
    assert doc is not None and doc.doc_id == "tickets/7"


@pytest.mark.parametrize(
    "value",
    [
        None,  # the tombstone after a delete
        b'{"schema": {"type": "struct"}, "payload": null}',
        json.dumps({"source": {}, "ddl": "ALTER TABLE t ADD c int", "tableChanges": []}).encode(),
        json.dumps({"ts_ms": 1}).encode(),  # a heartbeat
        json.dumps({"status": "BEGIN", "id": "571:53195829", "event_count": None}).encode(),
        json.dumps({"op": "t", "source": {"lsn": 1}}).encode(),  # a truncate
    ],
)
def test_what_carries_no_row_change_is_skipped(value: bytes | None) -> None:
    assert mapping().translate(TOPIC, 0, value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"after": {"id": 1}}', "no 'op'"),
        (json.dumps({"op": "x", "after": ROW}).encode(), "unknown op"),
        (json.dumps({"op": "c", "after": None, "source": {"lsn": 1}}).encode(), "without a row"),
        (change("c", {**ROW, "body": None} | {"subject": None}, lsn=-1), "no source.lsn"),
        (change("c", {k: v for k, v in ROW.items() if k != "body"}), "no column 'body'"),
        (change("c", {**ROW, "id": None}), "key column 'id'"),
        (change("c", {**ROW, "org": "Not A Tenant"}), "tenant"),
        (change("c", {**ROW, "groups": 5}), "acl column"),
    ],
)
def test_a_record_the_mapping_cannot_read_says_why(value: bytes, reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        mapping().translate(TOPIC, 0, value)


def test_a_template_that_does_not_suit_the_row_is_unmappable() -> None:
    with pytest.raises(Unmappable, match="template"):
        mapping(content="{subject:.2f}").translate(TOPIC, 0, change("c", ROW))


def test_a_topic_not_in_the_mapping_is_refused() -> None:
    with pytest.raises(Unmappable, match="not in the mapping"):
        mapping().translate("pg.public.other", 0, change("c", ROW))


def test_null_columns_read_as_empty_and_acl_strings_split_on_commas() -> None:
    doc = mapping().translate(TOPIC, 0, change("c", {**ROW, "subject": None, "groups": "it, hr"}))
    assert doc is not None and doc.content == "\n\nJams" and doc.acl == ["hr", "it"]
    doc = mapping().translate(TOPIC, 0, change("c", {**ROW, "groups": None, "status": None}))
    assert doc is not None and doc.acl == [] and doc.metadata == {}


def test_a_version_by_commit_time_grows_with_the_offset_and_a_replay_repeats_it() -> None:
    m = mapping(version="ts_ms")
    first = m.translate(TOPIC, 10, change("c", ROW))
    again = m.translate(TOPIC, 10, change("c", ROW))
    later = m.translate(TOPIC, 11, change("u", ROW))
    assert first is not None and again is not None and later is not None
    assert first.version == again.version < later.version
    assert first.version == 1_700_000_000_000 * 1_000_000 + 10


def test_a_composite_key_joins_its_columns() -> None:
    doc = mapping(doc_id=["org", "id"], doc_id_prefix="").translate(TOPIC, 0, change("c", ROW))
    assert doc is not None and doc.doc_id == "acme/7"


def test_the_example_mapping_loads(tmp_path: Path) -> None:
    m = load_mapping(ROOT / "infra" / "connect" / "mapping.example.yaml")
    assert m.topics == ["pg.public.tickets"]
    assert m.tables["pg.public.tickets"].columns >= {"id", "subject", "body", "groups"}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("tables:\n  - topic: a\n    tenant: {value: acme}\n    doc_id: [id]\n", ":2: content"),
        (
            "tables:\n  - topic: a\n    tenant: {column: org, value: x}\n"
            "    doc_id: [id]\n    content: '{b}'\n",
            ":2: tenant",
        ),
        (
            "tables:\n  - topic: a\n    tenant: {value: x}\n    doc_id: [id]\n    content: '{b'\n",
            ":2: content",
        ),
        (
            "tables:\n  - topic: a\n    tenant: {value: x}\n    doc_id: [id]\n    content: '{b}'\n"
            "  - topic: a\n    tenant: {value: x}\n    doc_id: [id]\n    content: '{b}'\n",
            ":6: a second mapping of topic a",
        ),
        ("tables: [\n", ": not YAML"),
        ("other: 1\n", ":1: expected 'tables:'"),
        ("tables: []\n", "maps no table"),
        (
            "tables:\n  - topic: a\n    tenant: {value: x}\n    doc_id: [id]\n"
            "    content: '{b}'\n    colour: red\n",
            ":2: colour",
        ),
    ],
)
def test_a_bad_mapping_file_names_its_line_and_reason(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert str(err.value).startswith(str(path)) and where in str(err.value)


def test_envelope_gives_the_change_s_row_and_position() -> None:
    c = envelope(change("u", ROW, lsn=9))
    assert c is not None and c.op == "u" and c.row == ROW and c.source["lsn"] == 9


def test_the_document_s_time_is_the_change_s_commit() -> None:
    doc = mapping().translate(TOPIC, 0, change("c", ROW))
    assert doc is not None
    assert doc.event_time.timestamp() == 1_700_000_000.0
