"""S3 delivery through the Flask test client with moto in process: proxy and redirect."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from reporting_svc import create_app
from reporting_svc.storage import layout
from tests.support import BUCKET, DOWNLOAD, STUDY, error_of

PREFIX = "reports/"
CHUNK = 65536
EXPIRES = 120
GRANT = f"{STUDY}:test:REPORTING_VIEW"
FILE_HEADERS = ("Content-Type", "Content-Disposition", "Content-Length", "ETag", "Repr-Digest")


@pytest.fixture
def s3_delivery() -> str:
    """The S3 delivery mode of this module's app; tests parametrize it by name."""
    return "proxy"


@pytest.fixture
def settings(make_settings, s3_bucket, s3_delivery):
    """An S3 app created inside moto's mock, with small chunks and a non-default expiry."""
    return make_settings(
        store="s3",
        s3_bucket=BUCKET,
        s3_region="us-east-1",
        s3_prefix=PREFIX,
        s3_delivery=s3_delivery,
        s3_chunk_size=CHUNK,
        presign_expires=EXPIRES,
    )


@pytest.fixture
def content() -> bytes:
    """About 300 KiB of random bytes: several chunks and a short last one."""
    return os.urandom(300 * 1024 + 123)


def test_proxy_returns_the_bytes_exactly_in_chunks_of_the_configured_size(
    publish, token, client, content
):
    record = publish(content, "listing.pdf")

    response = client.get(
        DOWNLOAD,
        query_string={"id": record.id},
        headers={"Authorization": f"Bearer {token(GRANT)}"},
        buffered=False,
    )
    chunks = list(response.response)
    response.close()

    assert response.status_code == 200
    assert b"".join(chunks) == content
    assert len(chunks) > 1
    assert all(len(chunk) <= CHUNK for chunk in chunks)


def test_proxy_sends_the_same_headers_as_the_local_store(
    publish, token, download, make_settings, content
):
    record = publish(content, "Übersicht 2025.pdf")
    local_app = create_app(make_settings())
    local_app.extensions["reporting_svc"].store.put(record, io.BytesIO(content))
    headers = {"Authorization": f"Bearer {token(GRANT)}"}

    from_s3 = download({"id": record.id}, token(GRANT))
    from_disk = local_app.test_client().get(
        DOWNLOAD, query_string={"id": record.id}, headers=headers
    )

    assert from_s3.status_code == from_disk.status_code == 200
    assert from_s3.data == from_disk.data == content
    for name in (*FILE_HEADERS, "Last-Modified", "Cache-Control", "X-Content-Type-Options"):
        assert from_s3.headers[name] == from_disk.headers[name], name


def test_proxy_headers_describe_the_file(publish, token, download, content):
    record = publish(content, "listing.pdf")

    response = download({"id": record.id}, token(GRANT))

    digest = hashlib.sha256(content).digest()
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="listing.pdf"'
    assert response.headers["Content-Length"] == str(len(content))
    assert response.headers["ETag"] == f'"{digest.hex()}"'
    assert response.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"


def test_proxy_head_gives_the_headers_of_a_get_and_no_body(publish, token, download, content):
    record = publish(content, "listing.pdf")

    head = download({"id": record.id}, token(GRANT), method="HEAD")
    get = download({"id": record.id}, token(GRANT))

    assert head.status_code == 200
    assert head.data == b""
    for name in FILE_HEADERS:
        assert head.headers[name] == get.headers[name], name


def _query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@pytest.mark.parametrize("s3_delivery", ["redirect"])
def test_redirect_answers_302_to_a_presigned_url_with_type_disposition_and_expiry(
    publish, token, download
):
    record = publish(b"a,b\n1,2\n", "Übersicht.csv")

    response = download({"id": record.id}, token(GRANT))

    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data == b""
    location = response.headers["Location"]
    assert urlsplit(location).path.endswith(f"/{PREFIX}{layout.content_key(record.id)}")
    query = _query(location)
    assert query["response-content-type"] == "text/csv"
    assert query["response-content-disposition"] == (
        "attachment; filename=\"Ubersicht.csv\"; filename*=UTF-8''%C3%9Cbersicht.csv"
    )
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == str(EXPIRES)


@pytest.mark.parametrize("s3_delivery", ["redirect"])
def test_redirect_location_serves_the_file_with_the_same_type_and_disposition(
    publish, token, download, content
):
    record = publish(content, "listing.pdf")

    location = download({"id": record.id}, token(GRANT)).headers["Location"]
    followed = requests.get(location, timeout=10)  # moto's mock answers requests too

    assert followed.status_code == 200
    assert followed.content == content
    assert followed.headers["Content-Type"] == "application/pdf"
    assert followed.headers["Content-Disposition"] == 'attachment; filename="listing.pdf"'


@pytest.mark.parametrize("s3_delivery", ["redirect"])
def test_redirect_head_gives_the_same_302(publish, token, download):
    record = publish()

    head = download({"id": record.id}, token(GRANT), method="HEAD")
    get = download({"id": record.id}, token(GRANT))

    assert head.status_code == 302
    assert head.data == b""
    assert _query(head.headers["Location"]).keys() == _query(get.headers["Location"]).keys()
    assert urlsplit(head.headers["Location"]).path == urlsplit(get.headers["Location"]).path


@pytest.mark.parametrize("s3_delivery", ["proxy", "redirect"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_record_whose_content_was_deleted_answers_500(
    publish, token, download, s3_bucket, method
):
    record = publish()
    s3_bucket.delete_object(Bucket=BUCKET, Key=PREFIX + layout.content_key(record.id))

    response = download({"id": record.id}, token(GRANT), method=method)

    assert response.status_code == 500
    assert response.headers["Cache-Control"] == "no-store"
    if method == "GET":
        details = error_of(response)["details"]
        assert record.id not in details
        assert "jobs/" not in details
        assert BUCKET not in details


@pytest.mark.parametrize("s3_delivery", ["proxy", "redirect"])
def test_a_caller_without_the_grant_gets_no_bytes_and_no_url(publish, token, download):
    record = publish()

    response = download({"id": record.id}, token(f"{STUDY}:active:REPORTING_VIEW"))

    assert response.status_code == 401
    assert "Location" not in response.headers
    assert error_of(response)["errorCode"] == "REPT_401"


# --- ranges, revalidation and a mismatched object (issue 3) ----------------------------


def test_proxy_range_gives_206_with_those_bytes(publish, token, download, content):
    record = publish(content, "listing.pdf")

    response = download({"id": record.id}, token(GRANT), headers={"Range": "bytes=10-19"})

    assert response.status_code == 206
    assert response.data == content[10:20]
    assert response.headers["Content-Range"] == f"bytes 10-19/{len(content)}"
    assert response.headers["Content-Length"] == "10"
    assert response.headers["ETag"] == f'"{record.sha256}"'


def test_proxy_unsatisfiable_range_is_a_416_envelope(publish, token, download, content):
    record = publish(content, "listing.pdf")

    response = download(
        {"id": record.id}, token(GRANT), headers={"Range": f"bytes={len(content)}-"}
    )

    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(content)}"
    assert error_of(response)["errorCode"] == "REPT_416"


def test_proxy_if_none_match_gives_304_without_a_body(publish, token, download):
    record = publish()

    response = download(
        {"id": record.id}, token(GRANT), headers={"If-None-Match": f'"{record.sha256}"'}
    )

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == f'"{record.sha256}"'


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("headers", [{}, {"Range": "bytes=0-9"}], ids=["whole", "range"])
def test_proxy_object_whose_length_differs_from_the_record_answers_500(
    publish, token, download, s3_bucket, content, method, headers
):
    record = publish(content, "listing.pdf")
    key = PREFIX + layout.content_key(record.id)
    s3_bucket.put_object(Bucket=BUCKET, Key=key, Body=b"something else entirely")

    response = download({"id": record.id}, token(GRANT), method=method, headers=headers)

    assert response.status_code == 500
    assert response.headers["Cache-Control"] == "no-store"
    if method == "GET":
        assert error_of(response)["errorCode"] == "REPT_500"
        assert b"something else" not in response.data


@pytest.mark.parametrize("s3_delivery", ["redirect"])
def test_redirect_if_none_match_gives_304_from_the_service(publish, token, download):
    record = publish()

    response = download({"id": record.id}, token(GRANT), headers={"If-None-Match": "*"})

    assert response.status_code == 304
    assert "Location" not in response.headers
    assert response.headers["ETag"] == f'"{record.sha256}"'


@pytest.mark.parametrize("s3_delivery", ["redirect"])
def test_redirect_failed_precondition_is_a_412_envelope_from_the_service(publish, token, download):
    record = publish()

    response = download({"id": record.id}, token(GRANT), headers={"If-Match": '"0123abcd"'})

    assert response.status_code == 412
    assert "Location" not in response.headers
    assert error_of(response)["errorCode"] == "REPT_412"


@pytest.mark.parametrize("s3_delivery", ["redirect"])
def test_redirect_unsatisfiable_range_is_a_416_envelope_from_the_service(
    publish, token, download, content
):
    record = publish(content, "listing.pdf")

    response = download({"id": record.id}, token(GRANT), headers={"Range": "bytes=-0"})

    assert response.status_code == 416
    assert "Location" not in response.headers
    assert response.headers["Content-Range"] == f"bytes */{len(content)}"
    assert error_of(response)["errorCode"] == "REPT_416"


@pytest.mark.parametrize("s3_delivery", ["redirect"])
def test_redirect_satisfiable_range_redirects_and_s3_applies_it(publish, token, download, content):
    record = publish(content, "listing.pdf")

    response = download({"id": record.id}, token(GRANT), headers={"Range": "bytes=10-19"})
    followed = requests.get(
        response.headers["Location"], headers={"Range": "bytes=10-19"}, timeout=10
    )

    assert response.status_code == 302
    assert followed.status_code == 206
    assert followed.content == content[10:20]


@pytest.mark.parametrize("s3_delivery", ["redirect"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Range": "bytes=10-19", "If-Range": '"stale"'},
        {"Range": "bytes=0-1,5-6"},
        {"If-Match": "*"},
        {"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ],
    ids=["stale-if-range", "multi-range", "if-match", "if-unmodified-since"],
)
def test_redirect_a_request_s3_would_answer_differently_is_streamed_by_the_service(
    publish, token, download, content, headers
):
    record = publish(content, "listing.pdf")

    response = download({"id": record.id}, token(GRANT), headers=headers)

    assert response.status_code == 200
    assert "Location" not in response.headers
    assert response.data == content
    assert response.headers["Content-Length"] == str(len(content))
    assert "Content-Range" not in response.headers
