"""Unit tests of ``services.ingestion.sync``'s pure parts: the walk, the plan by size and
time, and each file's outcome by its hash (the end-to-end runs are integration tests)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from services.ingestion.sync import (
    Bucket,
    Folder,
    Known,
    Seen,
    State,
    Summary,
    deletion,
    listed,
    plan,
    upsert,
    walk,
)
from shared.contracts.events import ContentType, Op

SRC = "file:///share"


def known(path: str, size: int, mtime: int, sha: str = "a" * 64, **kw: object) -> Known:
    base: dict[str, object] = {
        "size": size,
        "mtime_ns": mtime,
        "sha256": sha,
        "version": 100,
        "tenant": "acme",
        "acl": [],
        "doc_id": path,
    }
    base.update(kw)
    return Known(**base)  # type: ignore[arg-type]


def test_the_walk_finds_supported_files_and_skips_hidden_ones_and_links(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.md").write_text("x")
    (tmp_path / "a" / "two.PDF").write_bytes(b"%PDF")
    (tmp_path / "notes.bin").write_bytes(b"?")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.md").write_text("hidden")
    (tmp_path / ".draft.md").write_text("hidden")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    found = walk(tmp_path)
    assert sorted(found) == ["a/one.md", "a/two.PDF"]
    st = os.stat(tmp_path / "a" / "one.md")
    assert found["a/one.md"] == (1, st.st_mtime_ns)


def test_a_bucket_syncs_the_objects_a_folder_walk_would_find() -> None:
    assert listed("a/one.md") and listed("a/two.PDF") and listed("deep/er/scan.tiff")
    assert not listed("notes.bin") and not listed("a/")
    assert not listed(".git/x.md") and not listed("a/.draft.md")


def test_a_file_modified_within_the_clock_s_tick_of_the_walk_is_hashed_again(
    tmp_path: Path,
) -> None:
    folder = Folder(tmp_path)
    folder.walk()
    assert folder.racy(folder.walked_ns) and folder.racy(time.time_ns())
    assert not folder.racy(folder.walked_ns - 10**9)
    bucket = Bucket("docs", "share", client=None)
    assert bucket.prefix == "share/" and bucket.uri == "s3://docs/share/"
    assert bucket.uri_of("a b.md") == "s3://docs/share/a%20b.md"
    bucket.listed_ns = 100 * 10**9  # the store's clock: whole seconds
    assert bucket.racy(99 * 10**9) and not bucket.racy(98 * 10**9)


def test_the_plan_reads_only_what_size_time_tenant_or_acl_says_may_have_changed() -> None:
    seen = {"same.md": (5, 1), "grown.md": (6, 1), "touched.md": (5, 2), "new.md": (1, 1)}
    stats = {"same.md": (5, 1), "grown.md": (5, 1), "touched.md": (5, 1), "gone.md": (5, 1)}
    p = plan(seen, stats)
    assert p.unchanged == ["same.md"]
    assert p.read == ["grown.md", "new.md", "touched.md"]
    assert p.deleted == ["gone.md"]
    moved = plan(seen, stats, moved={"same.md"})
    assert moved.unchanged == [], "a path published for another tenant or acl is read again"
    assert moved.read == ["grown.md", "new.md", "same.md", "touched.md"]
    quiet = plan({"same.md": (5, 1)}, {"same.md": (5, 1)})
    assert (quiet.unchanged, quiet.read, quiet.deleted) == (["same.md"], [], [])


def test_the_cache_keeps_sizes_and_times_apart_and_parses_the_rest_only_when_asked(
    tmp_path: Path,
) -> None:
    state = State("localhost:1", "t.", SRC, tmp_path)
    state.known.update({"a.md": known("a.md", 5, 1), "b.md": known("b.md", 7, 2)})
    state.stats = {p: (k.size, k.mtime_ns) for p, k in state.known.items()}
    state.owner, state.offsets = ("acme", []), {0: 12}
    state.save()
    again = State("localhost:1", "t.", SRC, tmp_path)
    again.read_cache()
    assert again.stats == {"a.md": (5, 1), "b.md": (7, 2)} and again.offsets == {0: 12}
    assert again._known is None, "a no-change run parses no hash, tenant or acl"
    assert again.moved("acme", []) == ()
    assert again._known is None
    assert again.moved("acme", ["eng"]) == {"a.md", "b.md"}
    assert again.known == state.known
    again.save()  # details parsed: written again as they are now
    third = State("localhost:1", "t.", SRC, tmp_path)
    third.read_cache()
    assert third.known == state.known
    other = State("localhost:1", "t.", "file:///elsewhere", tmp_path)
    other.cache = state.cache  # another source's cache file is not taken for this one
    other.read_cache()
    assert (other.stats, other.offsets, other.known) == ({}, {}, {})
    state.cache.write_bytes(b"\x00garbage")
    third.read_cache()
    assert (third.stats, third.known) == ({}, {}), "an unreadable cache: the topic has it all"


def test_a_file_is_added_changed_or_only_touched_by_its_hash(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text("# Doc\nbody")
    data = (tmp_path / "doc.md").read_bytes()
    f = Seen("doc.md", len(data), 7)
    added = upsert(Folder(tmp_path), SRC, f, data, None, "acme", [])
    assert added.kind == "add" and added.record is not None
    (event,) = added.events
    assert event.doc_id == "doc.md" and event.content_type is ContentType.MARKDOWN
    assert added.record.sha256 == hashlib.sha256(data).hexdigest()
    prior = Known.of(added.record)
    touched = upsert(Folder(tmp_path), SRC, Seen("doc.md", len(data), 9), data, prior, "acme", [])
    assert touched.kind == "touch" and touched.events == []
    assert touched.record is not None and touched.record.version == prior.version
    assert touched.record.mtime_ns == 9
    changed = upsert(Folder(tmp_path), SRC, f, data + b"!", prior, "acme", [])
    assert changed.kind == "change" and changed.events[0].version > prior.version


def test_a_binary_file_goes_inline_with_its_hash_and_a_tenant_move_deletes_the_old_key(
    tmp_path: Path,
) -> None:
    (tmp_path / "scan.png").write_bytes(b"\x89PNG fake")
    data = (tmp_path / "scan.png").read_bytes()
    prior = known("scan.png", 3, 1, tenant="old", doc_id="scan.png")
    c = upsert(Folder(tmp_path), SRC, Seen("scan.png", len(data), 2), data, prior, "acme", [])
    assert [e.op for e in c.events] == [Op.DELETE, Op.UPSERT]
    assert c.events[0].tenant == "old" and c.events[1].tenant == "acme"
    assert c.events[1].content_base64 and c.events[1].content_sha256


def test_a_delete_is_newer_than_what_was_published_and_forgets_the_path() -> None:
    prior = known("gone.md", 5, 1, version=2**62)
    d = deletion("gone.md", prior)
    (event,) = d.events
    assert event.op is Op.DELETE and event.version == 2**62 + 1 and d.record is None


def test_the_summary_line_counts_each_outcome() -> None:
    s = Summary(unchanged=3)
    for kind in ("add", "add", "change", "delete", "touch"):
        s.count(kind)
    assert s.line() == "added 2, changed 1, deleted 1, unchanged 4, failed 0"
