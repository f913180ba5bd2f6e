"""Unit tests of ``shared.contracts.upstream``: the upstream SDK: files and folders become
DocumentEvents, deletes parse."""

from __future__ import annotations

from pathlib import Path

from shared.contracts.events import (
    ContentType,
    DocumentEvent,
    Op,
)
from shared.contracts.upstream import InputError, delete_event, events_from_paths


def test_files_and_folders_become_events(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# Alpha doc\n\nbody")
    (tmp_path / "sub" / "b.html").write_text("<title>Beta</title><p>x</p>")
    (tmp_path / "c.txt").write_text("plain")
    (tmp_path / "skip.bin").write_bytes(b"\0")
    good = DocumentEvent(tenant="t2", doc_id="j1", version=5, content="from jsonl")
    (tmp_path / "d.jsonl").write_text(good.model_dump_json() + '\n\n{"tenant": "x"}\n')
    items = list(events_from_paths([tmp_path], tenant="acme", acl=["eng"]))
    events = [i for i in items if isinstance(i, DocumentEvent)]
    errors = [i for i in items if isinstance(i, InputError)]
    by_id = {e.doc_id: e for e in events}
    assert set(by_id) == {"a.md", "sub/b.html", "c.txt", "j1"}
    assert by_id["a.md"].title == "Alpha doc" and by_id["a.md"].content_type is ContentType.MARKDOWN
    assert by_id["sub/b.html"].title == "Beta" and by_id["sub/b.html"].acl == ["eng"]
    assert by_id["c.txt"].title == "c" and by_id["j1"].tenant == "t2"
    assert len(errors) == 1 and "d.jsonl:3" in str(errors[0])


def test_delete_event_parses_tenant_and_doc() -> None:
    ev = delete_event("acme/sub/b.html")
    assert (ev.op, ev.tenant, ev.doc_id) == (Op.DELETE, "acme", "sub/b.html")
    for bad in ("acme", "acme/", "Bad Tenant/x"):
        try:
            delete_event(bad)
        except InputError:
            continue
        raise AssertionError(bad)


def test_documents_go_inline_when_small_and_by_hash_checked_reference_when_large(
    tmp_path: Path,
) -> None:
    import base64
    import hashlib

    from shared.contracts.events import ContentType
    from shared.contracts.upstream import file_event

    small, large = tmp_path / "small.pdf", tmp_path / "deck.pptx"
    small.write_bytes(b"%PDF small")
    large.write_bytes(b"PK" + b"x" * 5000)
    a = file_event(small, tmp_path, "acme", [], inline_max=1000)
    assert a.content_type is ContentType.PDF and base64.b64decode(a.content_base64) == b"%PDF small"
    assert a.content_sha256 == hashlib.sha256(b"%PDF small").hexdigest() and a.title == ""
    b = file_event(large, tmp_path, "acme", [], inline_max=1000)
    assert b.content_uri == large.resolve().as_uri() and not b.content_base64
    assert b.content_sha256 == hashlib.sha256(large.read_bytes()).hexdigest()
