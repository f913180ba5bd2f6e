"""Unit tests of ``services.ingestion.s3``'s pure parts: ``s3://`` URIs both ways (the
listing and reading run on a real S3 server in tests/integration/test_s3.py)."""

from __future__ import annotations

import pytest

from services.ingestion import s3


@pytest.mark.parametrize(
    "bucket,key",
    [("docs", "a.pdf"), ("docs", "team one/é memo.docx"), ("docs", "100% #1?.md"), ("docs", "")],
)
def test_an_object_uri_parses_back_to_its_bucket_and_key(bucket: str, key: str) -> None:
    uri = s3.uri(bucket, key)
    assert uri.startswith(f"s3://{bucket}/") and " " not in uri
    assert s3.parse(uri) == (bucket, key)


@pytest.mark.parametrize("uri", ["s3:///a.pdf", "https://docs/a.pdf", "docs/a.pdf"])
def test_what_is_not_an_s3_uri_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="s3://BUCKET/KEY"):
        s3.parse(uri)
