"""``llmops sync``: keep the index equal to a folder, its edits and deletes included.

One run walks the folder and compares each file with what was last published for it:
the same size and modification time is unchanged without reading it; otherwise its SHA-256
decides (a touched file publishes nothing). New and changed files are upserted, files gone
are deleted, a rename is both. What was published is kept per file on the compacted topic
``ingest.sync`` (keyed ``source|path``), and cached locally with the offsets it was read
to: a run reads only the topic's records past those offsets, so a sync from another
machine, or after the cache is lost, neither republishes everything nor misses a delete.
Two syncs of one source on one machine are refused (a lock file beside the cache).
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import marshal
import os
import struct
import sys
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import IO, Any, NamedTuple, Protocol

from tqdm import tqdm

from services.ingestion import s3
from shared.contracts.events import DocumentEvent, Op, SyncRecord, record_key, sync_key
from shared.contracts.producer import make_producer
from shared.contracts.topics import INGEST_DOCUMENTS, INGEST_SYNC
from shared.contracts.upstream import SUFFIX_TYPES, InputError, body_event, doc_id_of
from shared.kafka.reader import end_offsets, read_to_end

_CACHE_VERSION = f"4/{sys.version_info[0]}.{sys.version_info[1]}"  # marshal's format
_HEAD = struct.Struct("<Q")  # the cache file: the head's length, the head, the details
_FS_TICK_NS = 20_000_000  # a file system's clock tick, with room to spare


class Known(NamedTuple):
    """What was last published for one path (a tuple: a no-change run of 10,000 files reads
    them all from the cache)."""

    size: int
    mtime_ns: int
    sha256: str
    version: int
    tenant: str
    acl: list[str]
    doc_id: str

    @classmethod
    def of(cls, rec: SyncRecord) -> Known:
        """From the record on ingest.sync."""
        return cls(rec.size, rec.mtime_ns, rec.sha256, rec.version, rec.tenant, rec.acl, rec.doc_id)


class SyncBusy(RuntimeError):
    """Another sync of the same source runs on this machine."""


class Seen(NamedTuple):
    """A file found in the source: its path (with '/'), size and modification time."""

    path: str
    size: int
    mtime_ns: int


_SUFFIXES = frozenset(s.lstrip(".") for s in SUFFIX_TYPES)


def walk(root: Path) -> dict[str, tuple[int, int]]:
    """Every regular file of a supported type under ``root`` (hidden files and folders, and
    links to folders, are left out), by its path relative to ``root``: its size and
    modification time. As lean as a plain walk that stats every file: a no-change sync is
    mostly this."""
    found: dict[str, tuple[int, int]] = {}
    stack = [(str(root), "")]
    while stack:
        folder, rel = stack.pop()
        with os.scandir(folder) as entries:
            for e in entries:
                name = e.name
                if name[0] == ".":
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, f"{rel}{name}/"))
                elif name.rpartition(".")[2].lower() in _SUFFIXES:
                    st = e.stat()
                    if S_ISREG(st.st_mode):
                        found[rel + name] = (st.st_size, st.st_mtime_ns)
    return found


def listed(name: str) -> bool:
    """Whether a bucket's object, named ``name`` under the prefix, is synced: a supported
    type, no hidden segment (as ``walk`` leaves out hidden files and folders)."""
    if name.rpartition(".")[2].lower() not in _SUFFIXES:
        return False
    return not any(part.startswith(".") for part in name.split("/"))


class Source(Protocol):
    """Where files come from: a folder, or a bucket's prefix."""

    uri: str  # its name in the sync state (and the documents' source)
    by_reference: str  # what a reference to one of its files needs, said to the user

    def walk(self) -> dict[str, tuple[int, int]]:
        """Every file by its path: its size and modification time."""

    def read(self, path: str) -> bytes:
        """A file's bytes (raises OSError or s3.S3Failure)."""

    def uri_of(self, path: str) -> str:
        """Where a file is (its documents' source, and its reference when it is large)."""

    def racy(self, mtime_ns: int) -> bool:
        """Whether a file of the last walk was modified so close to it that it could change
        again with the same size and time (the clock's granularity): such a file is
        recorded with no time, so the next run hashes it again (as git does)."""


class Folder:
    """A local folder, or a mounted share."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = self.root.as_uri()
        self.by_reference = f"{self.root} under the ingestion service's INGESTION_FETCH_ROOTS"
        self.walked_ns = 0

    def walk(self) -> dict[str, tuple[int, int]]:
        self.walked_ns = time.time_ns()
        return walk(self.root)

    def racy(self, mtime_ns: int) -> bool:
        # a file system's times come from a coarse clock: a tick is 1 to 10 ms
        return mtime_ns >= self.walked_ns - _FS_TICK_NS

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def uri_of(self, path: str) -> str:
        return (self.root / path).resolve().as_uri()


class Bucket:
    """The objects under a prefix of an S3-compatible bucket (the prefix is a folder: a
    name without a trailing '/' gets one)."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket, self.client = bucket, client
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.uri = s3.uri(bucket, self.prefix)
        self.by_reference = f"bucket {bucket!r} in the ingestion service's INGESTION_FETCH_BUCKETS"
        self.listed_ns = 0

    def walk(self) -> dict[str, tuple[int, int]]:
        n = len(self.prefix)
        self.listed_ns, found = s3.objects(self.client, self.bucket, self.prefix)
        return {o.key[n:]: (o.size, o.mtime_ns) for o in found if listed(o.key[n:])}

    def racy(self, mtime_ns: int) -> bool:
        # an object's time, and the store's clock, are whole seconds
        return mtime_ns >= self.listed_ns - 1_000_000_000

    def read(self, path: str) -> bytes:
        return s3.read(self.client, self.bucket, self.prefix + path)

    def uri_of(self, path: str) -> str:
        return s3.uri(self.bucket, self.prefix + path)


@dataclass
class Plan:
    """What a sync does before reading any file: which paths are unchanged by size and
    time, which must be read (new, or changed size or time, or a new tenant or acl), and
    which are gone."""

    unchanged: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def plan(
    seen: dict[str, tuple[int, int]],
    stats: dict[str, tuple[int, int]],
    moved: Collection[str] = (),
) -> Plan:
    """Compare the walk with what was published (pure): ``stats`` is each known path's size
    and modification time, ``moved`` the known paths published for another tenant or acl
    than this run's (read again, whatever their time)."""
    if not moved and seen == stats:  # nothing changed: one comparison in C
        return Plan(unchanged=list(seen))
    get = stats.get
    if moved:
        unchanged = [p for p, f in seen.items() if get(p) == f and p not in moved]
    else:
        unchanged = [p for p, f in seen.items() if get(p) == f]
    out = Plan(unchanged=unchanged)
    if len(unchanged) < len(seen):
        same = set(unchanged)
        out.read = sorted(p for p in seen if p not in same)
    if len(stats) > len(unchanged):  # some known path was not found unchanged
        out.deleted = sorted(stats.keys() - seen.keys())
    return out


@dataclass
class Change:
    """One file's outcome: add, change, touch (same bytes, new time: state only), delete;
    the events to publish for it and its new state (None: forget the path)."""

    kind: str
    path: str
    events: list[DocumentEvent]
    record: SyncRecord | None


def next_version(prior: Known | None) -> int:
    """Now in nanoseconds, and always past what was published before for the file."""
    return max(time.time_ns(), prior.version + 1 if prior else 0)


def deletion(path: str, prior: Known) -> Change:
    """The delete of a file gone from its source."""
    event = DocumentEvent(
        op=Op.DELETE, tenant=prior.tenant, doc_id=prior.doc_id, version=next_version(prior)
    )
    return Change("delete", path, [event], None)


def upsert(
    src: Source,
    source: str,
    f: Seen,
    data: bytes,
    prior: Known | None,
    tenant: str,
    acl: list[str],
) -> Change:
    """The outcome for a file of ``src`` (named ``source`` in the state) that was read
    (raises InputError)."""
    digest = hashlib.sha256(data).hexdigest()
    same = prior is not None and (prior.tenant, prior.acl, prior.sha256) == (
        tenant,
        acl,
        digest,
    )
    version = prior.version if same and prior else next_version(prior)
    record = SyncRecord(
        source=source,
        path=f.path,
        tenant=tenant,
        doc_id=doc_id_of(f.path),
        acl=acl,
        version=version,
        sha256=digest,
        size=f.size,
        mtime_ns=f.mtime_ns,
    )
    if same:
        return Change("touch", f.path, [], record)
    uri = src.uri_of(f.path)
    events = [body_event(f.path, uri, data, tenant, acl, version=version, sha256=digest)]
    if prior is not None and prior.tenant != tenant:  # the document moves to a new key
        events.insert(0, deletion(f.path, prior).events[0])
    return Change("change" if prior else "add", f.path, events, record)


@dataclass
class Summary:
    """What a sync did (or, dry, would do)."""

    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    # the document events published, by key: their versions (what to wait for downstream)
    published: dict[str, int] = field(default_factory=dict)
    by_reference: int = 0  # of them, files too large to go inline (file:// references)

    def count(self, kind: str) -> None:
        """Count one file's outcome."""
        name = {"add": "added", "change": "changed", "delete": "deleted", "touch": "unchanged"}
        setattr(self, name[kind], getattr(self, name[kind]) + 1)

    def line(self) -> str:
        """The summary line."""
        return (
            f"added {self.added}, changed {self.changed}, deleted {self.deleted}, "
            f"unchanged {self.unchanged}, failed {self.failed}"
        )


class State:
    """What was published per file of one source: the local cache, brought up to date from
    ``ingest.sync`` (only the records past the offsets the cache was read to).

    A no-change run needs only each path's size and time, so the cache keeps them apart
    from the rest (hash, version, tenant, acl, doc id), which is parsed only when a file is
    read or deleted, or a record arrives: ``stats`` is always there, ``known`` on demand."""

    def __init__(self, bootstrap: str, prefix: str, source: str, cache_dir: Path) -> None:
        self.bootstrap, self.source = bootstrap, source
        self.topic = INGEST_SYNC.name(prefix)
        name = hashlib.sha256(f"{bootstrap}|{prefix}|{source}".encode()).hexdigest()[:20]
        # marshal, not JSON: a no-change run of 10,000 files reads its sizes and times in
        # 4 ms instead of 25 (bench/documents.py); it is only a cache of the topic, remade
        # when unreadable
        self.cache = cache_dir / f"{name}.cache"
        self.lock_path = cache_dir / f"{name}.lock"
        self.stats: dict[str, tuple[int, int]] = {}
        self.offsets: dict[int, int] = {}
        # the single tenant and acl every known path was published for (None: mixed)
        self.owner: tuple[str, list[str]] | None = None
        self._details = b""  # the cache's marshalled details, until ``known`` parses them
        self._known: dict[str, Known] | None = {}
        self._lock: IO[str] | None = None

    @property
    def known(self) -> dict[str, Known]:
        """Everything known per path (parsed from the cache on first use)."""
        if self._known is None:
            details = marshal.loads(self._details)
            self._known = {p: Known(*st, *details[p]) for p, st in self.stats.items()}
        return self._known

    def moved(self, tenant: str, acl: list[str]) -> Collection[str]:
        """The known paths last published for another tenant or acl than these."""
        if self.owner == (tenant, acl) or not self.stats:
            return ()
        return {p for p, k in self.known.items() if (k.tenant, k.acl) != (tenant, acl)}

    def lock(self) -> None:
        """Hold this source's lock until ``unlock`` (SyncBusy when another sync has it)."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.lock_path, "a+")  # noqa: SIM115 - held open for the whole run
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise SyncBusy(
                f"another sync of {self.source} is running ({holder}); wait for it, or stop it"
            ) from None
        f.truncate(0)
        f.write(f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}")
        f.flush()
        self._lock = f

    def unlock(self) -> None:
        """Release the lock."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def load(self) -> None:
        """The cache, then every record of the topic past its offsets."""
        self.read_cache()
        self.refresh()

    def read_cache(self) -> None:
        """The sizes, times and offsets from the cache (nothing known when there is none,
        or it is unreadable or from another Python: the topic has it all)."""
        try:
            raw = self.cache.read_bytes()
            (n,) = _HEAD.unpack_from(raw)
            head = marshal.loads(raw[_HEAD.size : _HEAD.size + n])
            if head["version"] == _CACHE_VERSION and head["source"] == self.source:
                self.stats, self.offsets = head["stats"], dict(head["offsets"])
                owner = head["owner"]
                self.owner = (owner[0], list(owner[1])) if owner else None
                self._details, self._known = raw[_HEAD.size + n :], None
                return
        except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError, struct.error):
            pass
        self.stats, self.offsets, self.owner = {}, {}, None
        self._details, self._known = b"", {}

    def refresh(self) -> None:
        """Apply the topic's records past the offsets read to (the run's own writes too)."""
        prefix = sync_key(self.source, "").encode()
        # with offsets from the cache the topic's partitions are known: no listing of the
        # cluster's topics (the slowest part of a no-change run against a busy cluster)
        ends = end_offsets(self.bootstrap, self.topic, len(self.offsets) or None)
        if not ends:  # no ingest.sync yet (a dry run before any sync): nothing known
            return
        if ends == self.offsets and self.cache.exists():
            return  # nothing new since the cache: the usual no-change run
        ended: dict[int, int] = {}
        try:
            records = list(
                read_to_end(
                    self.bootstrap,
                    self.topic,
                    start=self.offsets,
                    ended=ended,
                    partitions=len(ends),
                )
            )
        except LookupError:  # deleted since
            return
        mine = [r for r in records if r.key is not None and r.key.startswith(prefix)]
        if mine:
            known = self.known
            for r in mine:
                path = r.key[len(prefix) :].decode()
                if r.value is None:
                    known.pop(path, None)
                else:
                    known[path] = Known.of(SyncRecord.from_bytes(r.value))
            self.stats = {p: (k.size, k.mtime_ns) for p, k in known.items()}
            owners = {(k.tenant, tuple(k.acl)) for k in known.values()}
            if len(owners) == 1:
                tenant, acl = owners.pop()
                self.owner = (tenant, list(acl))
            else:
                self.owner = None
        changed = ended != self.offsets
        self.offsets = ended
        if changed or not self.cache.exists():
            self.save()

    def save(self) -> None:
        """Write the cache (atomically: a crash leaves the old one)."""
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache.with_suffix(".tmp")
        if self._known is not None:  # parsed (or new): the details as they are now
            self._details = marshal.dumps({p: tuple(k[2:]) for p, k in self._known.items()})
        head = marshal.dumps(
            {
                "version": _CACHE_VERSION,
                "source": self.source,
                "offsets": self.offsets,
                "owner": list(self.owner) if self.owner else None,
                "stats": self.stats,
            }
        )
        tmp.write_bytes(_HEAD.pack(len(head)) + head + self._details)
        tmp.replace(self.cache)


class Sync:
    """One source (a folder or a bucket's prefix) kept equal to the index, for one tenant
    and acl. ``source`` names it in the state when it is not its URI (a share mounted at
    different paths on different machines)."""

    def __init__(
        self,
        src: Path | Source,
        tenant: str,
        acl: list[str],
        bootstrap: str,
        prefix: str,
        cache_dir: Path,
        source: str | None = None,
    ) -> None:
        self.src = Folder(src) if isinstance(src, Path) else src
        self.tenant, self.acl = tenant, sorted(set(acl))
        self.bootstrap, self.prefix = bootstrap, prefix
        self.source = source or self.src.uri
        self.state = State(bootstrap, prefix, self.source, cache_dir)

    def run(
        self,
        dry_run: bool = False,
        progress: bool = False,
        echo: Callable[[str], None] = print,
    ) -> Summary:
        """One pass: the index made equal to the folder (SyncBusy when another runs)."""
        self.state.lock()
        try:
            # The state (a cache file, a round trip to Kafka) is read while the folder is
            # walked: on a no-change run the two are nearly all the time. Without the cyclic
            # collector: the pass makes tens of thousands of small tuples and no cycles, and
            # one collection over a large process cost 40 ms of it.
            collecting = gc.isenabled()
            gc.disable()
            try:
                with ThreadPoolExecutor(1) as pool:
                    loading = pool.submit(self.state.load)
                    seen = self.src.walk()
                    loading.result()
                todo = plan(seen, self.state.stats, self.state.moved(self.tenant, self.acl))
            finally:
                if collecting:
                    gc.enable()
            summary = Summary(unchanged=len(todo.unchanged))
            if not todo.read and not todo.deleted:
                return summary  # nothing to publish: no producer (10 ms of a no-change run)
            # changes stream: a file's bytes are held only until its event is sent
            changes = self._changes(todo, seen, summary, progress)
            if dry_run:
                for c in changes:
                    summary.count(c.kind)
                    if c.kind != "touch":
                        echo(f"would {c.kind} {c.path}")
                return summary
            done = self._publish(changes, summary)
            if done:
                self.state.refresh()
            for kind in done:
                summary.count(kind)
            return summary
        finally:
            self.state.unlock()

    def _changes(
        self, todo: Plan, seen: dict[str, tuple[int, int]], summary: Summary, progress: bool
    ) -> Iterator[Change]:
        for prior_path in todo.deleted:
            yield deletion(prior_path, self.state.known[prior_path])
        bar = not progress or not todo.read  # no bar over nothing to read
        for path in tqdm(todo.read, desc="reading", unit="file", disable=bar):
            try:
                data = self.src.read(path)
                prior = self.state.known.get(path)
                f = Seen(path, *seen[path])
                if self.src.racy(f.mtime_ns):
                    f = f._replace(mtime_ns=0)  # hashed again next run
                yield upsert(self.src, self.source, f, data, prior, self.tenant, self.acl)
            except (OSError, InputError, s3.S3Failure) as exc:
                summary.failed += 1
                summary.errors.append(f"{path}: {exc}")

    def _publish(self, changes: Iterator[Change], summary: Summary) -> list[str]:
        """The documents first, then (once they are acknowledged) the state: a crash between
        leaves files to publish again next run, never a state that claims too much. Returns
        the kinds of the changes that were published."""
        producer = make_producer(self.bootstrap)
        docs, state = INGEST_DOCUMENTS.name(self.prefix), INGEST_SYNC.name(self.prefix)
        try:
            sent = []
            for c in changes:
                futures = [
                    producer.send(docs, key=record_key(e), value=e.to_bytes()) for e in c.events
                ]
                versions = {e.key: e.version for e in c.events}
                by_ref = sum(1 for e in c.events if e.by_reference)
                sent.append((c.kind, c.path, c.record, versions, by_ref, futures))
            producer.flush()
            done: list[str] = []
            for kind, path, record, versions, by_ref, futures in sent:
                try:
                    for fut in futures:
                        fut.get(timeout=60)
                except Exception as exc:  # noqa: BLE001 - reported per file
                    summary.failed += 1
                    summary.errors.append(f"{path}: not published: {type(exc).__name__}: {exc}")
                    continue
                done.append(kind)
                summary.published.update(versions)
                summary.by_reference += by_ref
                key = sync_key(self.source, path).encode()
                producer.send(state, key=key, value=record.to_bytes() if record else None)
            producer.flush()
        finally:
            producer.close()
        return done
