"""S3 on a real S3-compatible server (SeaweedFS): ``s3://`` references fetched within the
settings' limits, and ``llmops sync s3://BUCKET/PREFIX`` keeping the index equal to a prefix
(edits, deletes, renames; large files going by reference and fetched by the service)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.ingestion import s3
from services.ingestion.fetch import Fetcher
from services.ingestion.settings import S3Settings
from services.ingestion.sync import Bucket, Sync
from services.ingestion.validate import IngestError
from shared.contracts.topics import DOCS_INDEXED, INGEST_DOCUMENTS
from shared.contracts.upstream import INLINE_MAX_BYTES
from shared.kafka.reader import end_offsets
from tests import documents as make
from tests.integration.test_sync import indexed, searching, token
from tests.s3_server import S3Server

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def fetcher(server: S3Server, buckets: list[str], **kw: object) -> Fetcher:
    args: dict[str, object] = {
        "schemes": ["s3"],
        "roots": [],
        "hosts": [],
        "max_bytes": 4096,
        "timeout_s": 10.0,
        "buckets": buckets,
        "s3": server.settings(),
    }
    args.update(kw)
    return Fetcher(**args)  # type: ignore[arg-type]


def reason(f: Fetcher, uri: str) -> str:
    with pytest.raises(IngestError) as info:
        f.fetch(uri)
    return f"{info.value.code}: {info.value}"


def test_an_s3_reference_is_read_only_from_an_allowed_bucket_and_within_its_limits(
    s3_server: S3Server, s3_bucket: str
) -> None:
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="docs/a memo é.pdf", Body=b"%PDF small")
    client.put_object(Bucket=s3_bucket, Key="docs/big.pdf", Body=b"x" * 5000)
    f = fetcher(s3_server, [s3_bucket])
    assert f.fetch(s3.uri(s3_bucket, "docs/a memo é.pdf")) == b"%PDF small"
    assert reason(f, s3.uri(s3_bucket, "docs/big.pdf")).startswith("TooLarge")
    missing = reason(f, s3.uri(s3_bucket, "docs/none.pdf"))
    assert missing.startswith("FetchFailed") and "NoSuchKey" in missing, missing
    assert reason(f, "s3://other-bucket/docs/a.pdf").startswith("FetchRefused")
    assert reason(f, f"s3://{s3_bucket}/").startswith("FetchRefused")
    # the server checks signatures: a wrong secret is refused, not read
    forged = S3Settings(**{**s3_server.settings().model_dump(), "secret_access_key": "wrong"})
    denied = reason(fetcher(s3_server, [s3_bucket], s3=forged), s3.uri(s3_bucket, "docs/big.pdf"))
    assert denied.startswith("FetchFailed") and "Signature" in denied, denied


def put(client: object, bucket: str, key: str, edition: int = 0, large: bool = False) -> None:
    name = key.rsplit("/", 1)[-1]
    tok = token(key.removeprefix("share/"), edition)
    if name.endswith(".pdf"):
        page = make.Page(
            paragraphs=[f"This report mentions {tok} once."], noise=600 if large else 0
        )
        body = make.pdf([page])
    else:
        body = f"# {name}\n\nThis note mentions {tok} and little else.\n".encode()
    client.put_object(Bucket=bucket, Key=key, Body=body)  # type: ignore[attr-defined]


def test_a_bucket_prefix_synced_with_edits_deletes_renames_and_a_large_file_by_reference(
    kafka_bootstrap: str,
    topic_prefix: str,
    start_service,
    service_env,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    client = s3_server.client()
    names = [f"team{i % 3}/note{i}.md" for i in range(8)] + ["reports/q1.pdf", "big/scan.pdf"]
    for n in names:
        put(client, s3_bucket, f"share/{n}", large=n == "big/scan.pdf")
    size = client.head_object(Bucket=s3_bucket, Key="share/big/scan.pdf")["ContentLength"]
    assert size > INLINE_MAX_BYTES, "the large PDF must go by reference"
    # not synced: outside the prefix, hidden, of no supported type
    put(client, s3_bucket, "elsewhere/x.md")
    put(client, s3_bucket, "share/.drafts/y.md")
    client.put_object(Bucket=s3_bucket, Key="share/blob.bin", Body=b"?")
    service = start_service(
        "ingestion embedding",
        **s3_server.env(),
        INGESTION_FETCH_BUCKETS=json.dumps([s3_bucket]),
    )
    cache = tmp_path / "sync"

    def sync(cache_dir: Path = cache, dry: bool = False):  # type: ignore[no-untyped-def]
        src = Bucket(s3_bucket, "share", client)
        job = Sync(src, "acme", [], kafka_bootstrap, topic_prefix, cache_dir)
        return job.run(dry_run=dry, echo=lambda _: None)

    start = end_offsets(kafka_bootstrap, DOCS_INDEXED.name(topic_prefix))
    first = sync()
    assert (first.added, first.failed, first.by_reference) == (10, 0, 1), first.errors
    indexed(kafka_bootstrap, topic_prefix, start, first.published)

    edited, deleted = names[0:2], names[2:4]
    for n in edited:
        put(client, s3_bucket, f"share/{n}", edition=1)
    for n in deleted:
        client.delete_object(Bucket=s3_bucket, Key=f"share/{n}")
    # a rename is a copy and a delete on S3
    client.copy_object(
        Bucket=s3_bucket,
        Key="share/moved/q1.pdf",
        CopySource={"Bucket": s3_bucket, "Key": "share/reports/q1.pdf"},
    )
    client.delete_object(Bucket=s3_bucket, Key="share/reports/q1.pdf")
    put(client, s3_bucket, "share/new/one.md")
    dry = sync(dry=True)
    assert (dry.added, dry.changed, dry.deleted, dry.published) == (2, 2, 3, {})
    start = end_offsets(kafka_bootstrap, DOCS_INDEXED.name(topic_prefix))
    second = sync()
    assert (second.added, second.changed, second.deleted, second.failed) == (2, 2, 3, 0)
    indexed(kafka_bootstrap, topic_prefix, start, second.published)

    docs_end = end_offsets(kafka_bootstrap, INGEST_DOCUMENTS.name(topic_prefix))
    assert sync().published == {}
    shutil.rmtree(cache)  # lost local state: it comes back from ingest.sync
    assert sync().published == {}
    # the command itself, as a user runs it: nothing to do, exit 0
    env = {**service_env, **s3_server.env(), "LLMOPS_DATA_DIR": str(tmp_path / "cli")}
    cli = [sys.executable, "-m", "services.cli", "sync", f"s3://{s3_bucket}/share"]
    done = subprocess.run(
        [*cli, "--tenant", "acme", "--no-progress"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "added 0, changed 0, deleted 0, unchanged 9, failed 0" in done.stdout
    assert end_offsets(kafka_bootstrap, INGEST_DOCUMENTS.name(topic_prefix)) == docs_end
    wrong = subprocess.run(
        [sys.executable, "-m", "services.cli", "sync", "s3://no-such-bucket/x", "--dry-run"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode == 1 and "bucket 'no-such-bucket'" in wrong.stderr, wrong.stderr
    service.stop()

    gone = {*deleted, "reports/q1.pdf"}
    with searching(service_env, topic_prefix) as found:
        for n in names:
            if n not in gone:
                assert found(token(n, 1 if n in edited else 0)) == [n], n
        assert found(token("reports/q1.pdf")) == ["moved/q1.pdf"]
        assert found(token("new/one.md")) == ["new/one.md"]
        for n in [*edited, *deleted]:
            assert found(token(n)) == [], n
        assert found(token("elsewhere/x.md")) == [] and found(token(".drafts/y.md")) == []
