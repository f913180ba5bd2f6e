"""Database rows as documents: Debezium change events, read through a declared mapping.

A mapping file (``INGESTION_CDC_MAPPING_FILE``) says, for each Debezium topic (one table),
which column or constant gives the tenant, which columns the doc id, what the title and the
content are (templates over columns), which column holds the acl and which columns go into
the metadata. ``CdcMapping.translate`` turns one change record into a ``DocumentEvent`` (an
upsert of ``after`` for ``c``, ``r`` and ``u``; a delete for ``d``), None for what carries no
change (a tombstone, a schema change, a heartbeat), or raises ``Unmappable`` with the reason.

The version is the change's own position, so it grows with each change of a row and a
replay gives the same one: the log sequence number (PostgreSQL's ``lsn``), or the commit
time in milliseconds with the record's offset as tiebreak (``ts_ms``) for a source without
one.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.contracts.events import DocumentEvent, Op
from shared.yamlfile import DeclaredFileError, items_with_lines, validated

UPSERTS = frozenset({"c", "r", "u"})  # create, snapshot read, update
DELETE = "d"


class MappingError(DeclaredFileError):
    """A mapping file that cannot be used: names the file, the line and the reason."""


class Unmappable(ValueError):
    """A change record the mapping cannot make a document of (dead-lettered)."""

    code = "CdcUnmappable"


class Value(BaseModel):
    """A column's value, or a constant."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = Field(default=None, description="The column that holds it.")
    value: Any = Field(default=None, description="A constant, the same for every row.")

    @model_validator(mode="after")
    def _one(self) -> Value:
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of 'column' and 'value'")
        return self

    def of(self, row: dict[str, Any]) -> Any:
        if self.column is None:
            return self.value
        if self.column not in row:
            raise Unmappable(f"the row has no column {self.column!r}")
        return row[self.column]


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


class TableMapping(BaseModel):
    """How one table's rows become documents."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(description="The Debezium topic of the table (prefix.schema.table).")
    tenant: Value = Field(description="The tenant: {column: NAME} or {value: CONSTANT}.")
    doc_id: list[str] = Field(
        min_length=1, description="The primary key's columns; several are joined with '/'."
    )
    doc_id_prefix: str = Field(default="", description="Put before the key: 'tickets/'.")
    title: str = Field(default="", description="A template over columns: '{subject}'.")
    content: str = Field(description="A template over columns: '{subject}\\n\\n{body}'.")
    acl: Value | None = Field(
        default=None,
        description="Groups that may read the row: a column holding a list or a "
        "comma-separated string, or a constant list. Unset: every group of the tenant.",
    )
    metadata: list[str] = Field(default=[], description="Columns copied into the metadata.")
    source: str = Field(default="", description="Where the documents come from, as cited.")
    version: Literal["lsn", "ts_ms"] = Field(
        default="lsn",
        description="What orders a row's changes: the log sequence number (PostgreSQL), or "
        "the commit time in milliseconds with the record's offset as tiebreak.",
    )

    @field_validator("title", "content")
    @classmethod
    def _template(cls, v: str) -> str:
        fields = _fields(v)  # ValueError on a brace left open
        bad = [f for f in fields if not f.isidentifier()]
        if bad:
            raise ValueError(f"{{{bad[0]}}} is not a column name")
        return v

    @cached_property
    def columns(self) -> frozenset[str]:
        """Every column the mapping reads of an upsert's row (worked out once, not per
        record)."""
        named = {*self.doc_id, *self.metadata, *_fields(self.title), *_fields(self.content)}
        named |= {v.column for v in (self.tenant, self.acl) if v is not None and v.column}
        return frozenset(named)

    def _doc_id(self, row: dict[str, Any]) -> str:
        parts = []
        for column in self.doc_id:
            if row.get(column) is None:
                raise Unmappable(f"the row has no value for its key column {column!r}")
            parts.append(str(row[column]))
        return self.doc_id_prefix + "/".join(parts)

    def _acl(self, row: dict[str, Any]) -> list[str]:
        if self.acl is None:
            return []
        groups = self.acl.of(row)
        if groups is None:
            return []
        if isinstance(groups, str):
            return [g.strip() for g in groups.split(",") if g.strip()]
        if isinstance(groups, list):
            return [str(g) for g in groups]
        raise Unmappable(f"acl column {self.acl.column!r} holds {type(groups).__name__}")

    def document(
        self, op: str, row: dict[str, Any], version: int, when: datetime | None = None
    ) -> DocumentEvent:
        """The document (or the deletion) a change of ``row`` makes, dated ``when`` (now if
        None)."""
        try:
            tenant = self.tenant.of(row)
        except Unmappable as exc:
            if op != DELETE:
                raise
            # a delete's row holds the primary key only, unless the table says otherwise
            raise Unmappable(
                f"{exc}: a delete carries the key's columns only; take the tenant from a key "
                "column or a constant, or ALTER TABLE ... REPLICA IDENTITY FULL"
            ) from None
        common: dict[str, Any] = {"tenant": tenant, "doc_id": self._doc_id(row), "version": version}
        if when is not None:
            common["event_time"] = when
        try:
            if op == DELETE:
                return DocumentEvent(op=Op.DELETE, source=self.source, **common)
            missing = sorted(self.columns - row.keys())
            if missing:
                raise Unmappable(f"the row has no column {missing[0]!r} the mapping names")
            texts = {k: "" if v is None else v for k, v in row.items()}
            try:  # a format spec that does not suit the value ("{price:.2f}" of a string)
                title, content = self.title.format_map(texts), self.content.format_map(texts)
            except (ValueError, TypeError) as exc:
                raise Unmappable(f"a template does not suit the row: {exc}") from None
            return DocumentEvent(
                title=title,
                content=content,
                acl=self._acl(row),
                metadata={c: row[c] for c in self.metadata if row[c] is not None},
                source=self.source,
                **common,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise Unmappable(f"{where}: {first['msg']}") from None


@dataclass(frozen=True)
class Change:
    """What a Debezium record says: the operation, the row and the change's position."""

    op: str
    row: dict[str, Any]
    source: dict[str, Any]


def envelope(value: bytes | None) -> Change | None:
    """The change a Debezium record holds (JSON converter, with or without schemas), or
    None for a record that holds none: a tombstone, a schema change, a heartbeat or a
    transaction marker. Raises Unmappable for a record that is not a change event."""
    if value is None:
        return None  # the tombstone that follows a delete, for compaction
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Unmappable(f"not JSON: {exc}") from None
    if isinstance(data, dict) and "payload" in data and "schema" in data:
        data = data["payload"]  # the JSON converter with schemas.enable=true
    if data is None:
        return None
    if not isinstance(data, dict):
        raise Unmappable(f"a change event is a JSON object, not {type(data).__name__}")
    if "op" not in data:
        if {"ddl", "tableChanges"} & data.keys() or "ts_ms" in data and len(data) <= 2:
            return None  # a schema change, or a heartbeat
        if "status" in data and "id" in data and "event_count" in data:
            return None  # a transaction's BEGIN or END
        raise Unmappable("not a Debezium change event: no 'op'")
    op = data["op"]
    if op == "t" or op == "m":
        return None  # a truncate, a logical decoding message: no row
    if op not in UPSERTS and op != DELETE:
        raise Unmappable(f"unknown op {op!r}")
    row = data.get("before" if op == DELETE else "after")
    if not isinstance(row, dict):
        side = "before" if op == DELETE else "after"
        raise Unmappable(f"op {op!r} without a row in {side!r}")
    source = data.get("source")
    return Change(op, row, source if isinstance(source, dict) else {})


@dataclass(frozen=True)
class CdcMapping:
    """The tables a mapping file names, by topic."""

    tables: dict[str, TableMapping]

    @property
    def topics(self) -> list[str]:
        return sorted(self.tables)

    def translate(self, topic: str, offset: int, value: bytes | None) -> DocumentEvent | None:
        """The document event a record of ``topic`` makes, or None (nothing to do)."""
        table = self.tables.get(topic)
        if table is None:
            raise Unmappable(f"topic {topic!r} is not in the mapping")
        change = envelope(value)
        if change is None:
            return None
        committed = change.source.get("ts_ms")
        # the change happened at its commit: freshness (docs.indexed's source_event_time,
        # monitoring's freshness) counts from there, not from when it was read
        when = (
            datetime.fromtimestamp(committed / 1000, tz=UTC)
            if isinstance(committed, int) and committed > 0
            else None
        )
        return table.document(change.op, change.row, version_of(table, change, offset), when)


def version_of(table: TableMapping, change: Change, offset: int) -> int:
    """The change's position, as a document version."""
    if table.version == "lsn":
        lsn = change.source.get("lsn")
        if not isinstance(lsn, int) or lsn < 0:
            raise Unmappable("no source.lsn in the change (set version: ts_ms for this source)")
        return lsn
    ts = change.source.get("ts_ms")
    if not isinstance(ts, int) or ts < 0:
        raise Unmappable("no source.ts_ms in the change")
    return ts * 1_000_000 + offset % 1_000_000  # the commit's millisecond, as nanoseconds


def load_mapping(path: Path) -> CdcMapping:
    """The mapping of a YAML file (``tables:`` then a list); MappingError says where it is
    wrong."""
    tables: dict[str, TableMapping] = {}
    for item, line in items_with_lines(path, "tables", MappingError):
        table = validated(TableMapping, item, path, line, MappingError)
        if table.topic in tables:
            raise MappingError(f"{path}:{line}: a second mapping of topic {table.topic}")
        tables[table.topic] = table
    if not tables:
        raise MappingError(f"{path}: maps no table")
    return CdcMapping(tables)
