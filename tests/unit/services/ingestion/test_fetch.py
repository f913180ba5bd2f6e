"""Unit tests of ``services.ingestion.fetch``: bodies inline and by reference, within the
schemes, folders and hosts allowed, hash-checked; a real HTTP server on loopback."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.ingestion.fetch import Fetcher, host_allowed
from services.ingestion.validate import IngestError
from shared.contracts.events import ContentType, DocumentEvent

BODY = b"%PDF-1.7 pretend body" * 10
SHA = hashlib.sha256(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        if self.path == "/doc.pdf":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/same-host":
            self.send_response(302)
            self.send_header("Location", "/doc.pdf")
            self.end_headers()
        elif self.path == "/elsewhere":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/doc.pdf")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def fetcher(tmp_path: Path, **kw: object) -> Fetcher:
    args: dict[str, object] = {
        "schemes": ["file", "http", "https"],
        "roots": [tmp_path.resolve()],
        "hosts": ["127.0.0.1"],
        "max_bytes": 1 << 20,
        "timeout_s": 5.0,
    }
    args.update(kw)
    return Fetcher(**args)  # type: ignore[arg-type]


def by_ref(uri: str, sha: str = SHA) -> DocumentEvent:
    return DocumentEvent(
        tenant="acme",
        doc_id="d",
        version=1,
        content_type=ContentType.PDF,
        content_uri=uri,
        content_sha256=sha,
    )


def code(f: Fetcher, event: DocumentEvent) -> str:
    with pytest.raises(IngestError) as info:
        f.body(event)
    return info.value.code


def test_inline_bytes_decode_and_their_hash_is_checked(tmp_path: Path) -> None:
    f = fetcher(tmp_path)
    inline = {"tenant": "acme", "doc_id": "d", "version": 1, "content_type": ContentType.PDF}
    b64 = base64.b64encode(BODY).decode()
    assert f.body(DocumentEvent(**inline, content_base64=b64)) == BODY
    assert f.body(DocumentEvent(**inline, content_base64=b64, content_sha256=SHA)) == BODY
    wrong = DocumentEvent(**inline, content_base64=b64, content_sha256="0" * 64)
    assert code(f, wrong) == "HashMismatch"
    assert code(f, DocumentEvent(**inline, content_base64="%%%not base64")) == "InvalidContent"


def test_a_file_under_an_allowed_folder_is_read_and_nothing_outside_it(tmp_path: Path) -> None:
    root = tmp_path / "share"
    root.mkdir()
    (root / "doc.pdf").write_bytes(BODY)
    (tmp_path / "secret.pdf").write_bytes(BODY)
    (root / "link.pdf").symlink_to(tmp_path / "secret.pdf")
    f = fetcher(tmp_path, roots=[root.resolve()])
    assert f.body(by_ref((root / "doc.pdf").as_uri())) == BODY
    assert code(f, by_ref((tmp_path / "secret.pdf").as_uri())) == "FetchRefused"
    assert code(f, by_ref((root / "link.pdf").as_uri())) == "FetchRefused", "links resolved"
    assert code(f, by_ref(f"file://{root}/../secret.pdf")) == "FetchRefused"
    assert code(f, by_ref("file:///etc/passwd")) == "FetchRefused"
    assert code(f, by_ref((root / "missing.pdf").as_uri())) == "FetchFailed"
    assert code(f, by_ref((root / "doc.pdf").as_uri(), sha="1" * 64)) == "HashMismatch"
    assert code(fetcher(tmp_path, roots=[]), by_ref((root / "doc.pdf").as_uri())) == "FetchRefused"
    assert (
        code(fetcher(tmp_path, roots=[root], max_bytes=10), by_ref((root / "doc.pdf").as_uri()))
        == "TooLarge"
    )


def test_http_from_allowed_hosts_only_and_no_redirect_to_another_host(
    tmp_path: Path, server: str
) -> None:
    f = fetcher(tmp_path)
    assert f.body(by_ref(f"{server}/doc.pdf")) == BODY
    assert f.body(by_ref(f"{server}/same-host")) == BODY
    assert code(f, by_ref(f"{server}/elsewhere")) == "FetchRefused"
    assert code(f, by_ref(f"{server}/nothing")) == "FetchFailed"
    assert (
        code(fetcher(tmp_path, hosts=["example.org"]), by_ref(f"{server}/doc.pdf"))
        == "FetchRefused"
    )
    assert code(fetcher(tmp_path, schemes=["file"]), by_ref(f"{server}/doc.pdf")) == "FetchRefused"
    assert code(fetcher(tmp_path, max_bytes=100), by_ref(f"{server}/doc.pdf")) == "TooLarge"
    assert code(f, by_ref("ftp://127.0.0.1/doc.pdf")) == "FetchRefused"
    assert code(f, by_ref("http://127.0.0.1:1/doc.pdf")) == "FetchFailed"  # nothing listens


def test_hosts_match_exactly_or_under_a_dotted_domain() -> None:
    allowed = ["docs.example.com", ".files.example.org"]
    assert host_allowed("DOCS.example.com", allowed)
    assert host_allowed("a.files.example.org", allowed)
    assert not host_allowed("files.example.org.evil.com", allowed)
    assert not host_allowed("evildocs.example.com", allowed)


def test_an_s3_reference_names_an_allowed_bucket_and_an_object_before_the_store_is_asked(
    tmp_path: Path,
) -> None:
    # no store is configured: each of these is refused before any request could be made
    f = fetcher(tmp_path, schemes=["s3"], buckets=["docs"])
    assert code(f, by_ref("s3://other/a.pdf")) == "FetchRefused"
    assert code(f, by_ref("s3://docs/")) == "FetchRefused"
    assert code(f, by_ref("s3:///a.pdf")) == "FetchRefused"
    assert code(fetcher(tmp_path, buckets=["docs"]), by_ref("s3://docs/a.pdf")) == "FetchRefused"
