"""`llmops sync` end to end on the real broker and store: a folder's adds, edits, deletes and
renames reach the index; a sync with nothing new publishes nothing, also after its local
state is gone and from a second clone (the state comes back from ingest.sync)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from services.ingestion.sync import Sync, SyncBusy
from shared.contracts.events import DocumentIndexed
from shared.contracts.topics import DOCS_INDEXED, INGEST_DOCUMENTS
from shared.kafka.reader import end_offsets, wait_for_events
from shared.settings import PlatformSettings, QdrantSettings
from shared.store.base import SearchMode
from shared.store.open import open_store
from shared.store.retrieval import retrieve
from tests import documents as make

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def token(name: str, edition: int = 0) -> str:
    """A word no other file holds: BM25 finds exactly the files that have it."""
    return f"zq{name.replace('/', 'x').replace('.', 'y')}e{edition}"


def write(folder: Path, name: str, edition: int = 0) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tok = token(name, edition)
    if name.endswith(".pdf"):
        path.write_bytes(make.pdf([make.Page(paragraphs=[f"Page one mentions {tok} once."])]))
    elif name.endswith(".docx"):
        path.write_bytes(make.docx([("h1", "Memo"), ("p", f"The memo mentions {tok} once.")]))
    else:
        path.write_text(f"# File {name}\n\nThis file mentions {tok} and little else.\n")


@contextmanager
def searching(service_env: dict[str, str], prefix: str) -> Iterator[Callable[[str], list[str]]]:
    """The doc ids whose text holds a word (BM25, tenant acme), in the services' store."""
    data_dir = Path(service_env["LLMOPS_DATA_DIR"])
    store = open_store(QdrantSettings(), PlatformSettings(data_dir=data_dir), prefix)
    try:

        def found(word: str) -> list[str]:
            hits = retrieve(store, word, "acme", [], top_k=3, mode=SearchMode.SPARSE)
            return [h.doc_id for h in hits]

        yield found
    finally:
        store.close()


def indexed(bootstrap: str, prefix: str, start: dict[int, int], want: dict[str, int]) -> None:
    got = wait_for_events(
        bootstrap, DOCS_INDEXED.name(prefix), DocumentIndexed, start, want, timeout_s=180
    )
    assert set(got) == set(want), f"not indexed: {sorted(set(want) - set(got))[:5]}"


def test_a_folder_synced_three_times_then_from_lost_state_and_a_second_clone(
    kafka_bootstrap: str, topic_prefix: str, start_service, service_env, tmp_path: Path
) -> None:
    folder = tmp_path / "share"
    names = [f"team{i % 5}/note{i}.md" for i in range(46)] + [
        "reports/q1.pdf",
        "reports/q2.pdf",
        "memos/m1.docx",
        "readme.txt",
    ]
    for n in names:
        write(folder, n)
    service = start_service("ingestion embedding")
    cache = tmp_path / "clone-a" / "sync"

    def sync(cache_dir: Path = cache, dry: bool = False):  # type: ignore[no-untyped-def]
        job = Sync(folder, "acme", [], kafka_bootstrap, topic_prefix, cache_dir)
        return job.run(dry_run=dry, echo=lambda _: None)

    start = end_offsets(kafka_bootstrap, DOCS_INDEXED.name(topic_prefix))
    first = sync()
    assert (first.added, first.failed, len(first.published)) == (50, 0, 50), first.errors
    indexed(kafka_bootstrap, topic_prefix, start, first.published)

    # 5 edited, 5 deleted, 2 renamed, 3 added
    edited, deleted = names[0:5], names[5:10]
    renamed = {names[10]: "moved/a.md", "reports/q2.pdf": "moved/q2.pdf"}
    added = ["new/one.md", "new/two.md", "new/scan.pdf"]
    for n in edited:
        write(folder, n, edition=1)
    for n in deleted:
        (folder / n).unlink()
    for old, new in renamed.items():
        (folder / new).parent.mkdir(parents=True, exist_ok=True)
        (folder / old).rename(folder / new)
    for n in added:
        write(folder, n)
    dry = sync(dry=True)
    assert (dry.added, dry.changed, dry.deleted, dry.published) == (5, 5, 7, {})
    start = end_offsets(kafka_bootstrap, DOCS_INDEXED.name(topic_prefix))
    second = sync()
    assert (second.added, second.changed, second.deleted, second.failed) == (5, 5, 7, 0)
    assert second.unchanged == 50 - 5 - 5 - 2
    indexed(kafka_bootstrap, topic_prefix, start, second.published)

    docs_end = end_offsets(kafka_bootstrap, INGEST_DOCUMENTS.name(topic_prefix))
    third = sync()
    assert third.published == {} and third.unchanged == 50 - 5 - 2 + 5
    shutil.rmtree(cache)  # the local state is lost: it comes back from ingest.sync
    assert sync().published == {}
    other = tmp_path / "clone-b" / "sync"  # a second clone, never synced before
    again = sync(other)
    assert again.published == {} and again.unchanged == third.unchanged
    assert end_offsets(kafka_bootstrap, INGEST_DOCUMENTS.name(topic_prefix)) == docs_end

    # the second clone's state misses no delete made after it
    start = end_offsets(kafka_bootstrap, DOCS_INDEXED.name(topic_prefix))
    (folder / "readme.txt").unlink()
    late = sync(other)
    assert (late.deleted, len(late.published)) == (1, 1)
    indexed(kafka_bootstrap, topic_prefix, start, late.published)
    service.stop()

    present = [n for n in names if n not in deleted and n not in renamed and n != "readme.txt"]
    with searching(service_env, topic_prefix) as found:
        for n in present:
            assert found(token(n, 1 if n in edited else 0)) == [n], n
        for old, new in renamed.items():
            assert found(token(old)) == [new]
        for n in added:
            assert found(token(n)) == [n]
        for n in [*edited, *deleted, "readme.txt"]:
            assert found(token(n)) == [], n


def test_two_syncs_of_one_source_at_once_are_refused(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    folder = tmp_path / "share"
    write(folder, "a.md")
    cache = tmp_path / "sync"
    first = Sync(folder, "acme", [], kafka_bootstrap, topic_prefix, cache)
    first.state.lock()
    try:
        with pytest.raises(SyncBusy, match="another sync of .* is running \\(pid"):
            Sync(folder, "acme", [], kafka_bootstrap, topic_prefix, cache).run()
        # and from the command line: a clear message, exit 1
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "LLMOPS_DATA_DIR": str(tmp_path),
        }
        out = subprocess.run(
            [sys.executable, "-m", "services.cli", "sync", str(folder), "--tenant", "acme"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert out.returncode == 1 and "another sync of" in out.stderr, out.stderr
    finally:
        first.state.unlock()
    assert Sync(folder, "acme", [], kafka_bootstrap, topic_prefix, cache).run().added == 1


def test_watch_follows_new_and_deleted_files_after_a_debounce(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    import signal
    import time

    from shared.contracts.events import DocumentEvent, Op
    from tests.kafka_helpers import consume

    folder = tmp_path / "share"
    write(folder, "first.md")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "LLMOPS_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "sync",
            str(folder),
            "--tenant",
            "acme",
            "--watch",
            "--debounce-ms",
            "300",
            "--no-progress",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.start()

    def printed(text: str, timeout_s: float = 60) -> bool:
        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            if any(text in line for line in lines):
                return True
            time.sleep(0.1)
        return False

    try:
        assert printed("watching"), lines
        assert "added 1, changed 0, deleted 0, unchanged 0, failed 0\n" in lines
        write(folder, "second.md")
        (folder / "first.md").unlink()
        assert printed("deleted 1"), lines
    finally:
        proc.send_signal(signal.SIGINT)  # stops after the pass in hand, cleanly
        code = proc.wait(timeout=30)
        reader.join(timeout=10)
    assert code == 0, lines
    recs = consume(kafka_bootstrap, INGEST_DOCUMENTS.name(topic_prefix), until=3, timeout_s=30)
    got = [DocumentEvent.from_bytes(r.value) for r in recs]
    ops = {(e.doc_id, e.op): e.version for e in got}
    assert set(ops) == {("first.md", Op.UPSERT), ("second.md", Op.UPSERT), ("first.md", Op.DELETE)}
    assert ops[("first.md", Op.DELETE)] > ops[("first.md", Op.UPSERT)]
    assert not any("INFO" in line for line in lines), "library log lines in the way"
