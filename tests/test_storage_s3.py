"""The S3 store against moto in process: layout, write-once, listing, copying, failures."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from harness.processes import free_port
from reporting_svc import create_app
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.storage import JobExists, JobRecord, StoreError, layout, s3
from reporting_svc.storage.entries import Withdrawal
from reporting_svc.storage.local import LocalStore
from reporting_svc.storage.recent import Recent
from reporting_svc.storage.s3 import S3Store
from tests.support import BUCKET, STUDY, error_of

PREFIX = "some/prefix/"
WITHDRAWAL = Withdrawal(withdrawnAt="2026-01-02T03:04:05.006Z", by="ops-anna", reason="in error")
JOB = "6A7C29DD011241DFBE1B64399283C860"


@pytest.fixture
def settings(make_settings, s3_bucket):
    """This module's app uses an S3 store, created inside moto's mock."""
    return make_settings(store="s3", s3_bucket=BUCKET, s3_region="us-east-1", s3_prefix=PREFIX)


def _keys(client) -> set[str]:
    listed = client.list_objects_v2(Bucket=BUCKET)
    return {item["Key"] for item in listed.get("Contents", [])}


def _object(client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_publish_writes_claim_record_and_content_alone_under_the_prefix(publish, s3_bucket):
    record = publish(b"a,b\n1,2\n", "extract.csv", job_id=JOB)

    assert _keys(s3_bucket) == {
        PREFIX + layout.claim_key(JOB),
        PREFIX + layout.record_key(JOB),
        PREFIX + layout.content_key(JOB),
    }
    assert json.loads(_object(s3_bucket, PREFIX + layout.record_key(JOB))) == json.loads(
        record.to_json()
    )
    assert _object(s3_bucket, PREFIX + layout.content_key(JOB)) == b"a,b\n1,2\n"
    head = s3_bucket.head_object(Bucket=BUCKET, Key=PREFIX + layout.content_key(JOB))
    assert head["ContentType"] == "text/csv"


def test_index_markers_of_older_versions_are_ignored(publish, store, s3_bucket):
    publish(job_id=JOB)
    for marker in (f"index/{STUDY}/test/{JOB}", f"index/tenant/test/{'0' * 32}"):
        s3_bucket.put_object(Bucket=BUCKET, Key=PREFIX + marker, Body=b"")

    assert list(store.job_ids()) == [JOB]
    assert list(store.entry_ids(Withdrawal.name)) == []
    assert store.get_record("0" * 32) is None


def test_publishing_an_existing_id_raises_job_exists_and_keeps_the_original(
    publish, store, s3_bucket
):
    original = publish(b"original bytes", "first.csv", job_id=JOB)
    keys_before = _keys(s3_bucket)

    with pytest.raises(JobExists):
        publish(b"replacement", "second.pdf", job_id=JOB.lower(), mode="active")

    assert store.get_record(JOB) == original
    assert _object(s3_bucket, PREFIX + layout.content_key(JOB)) == b"original bytes"
    assert _keys(s3_bucket) == keys_before


def test_get_record_of_an_unknown_id_is_none(publish, store):
    publish(job_id=JOB)

    assert store.get_record("0" * 32) is None


def test_get_record_reads_back_the_published_record(publish, store):
    record = publish(b"x", "x.csv", job_id=JOB, kickoff="2025-06-04T11:27:52.014Z")

    assert store.get_record(JOB.lower()) == record


def test_a_store_copied_from_local_disk_serves_the_same_records_and_bytes(tmp_path, s3_bucket):
    local = LocalStore(tmp_path / "local")
    contents = {"extract.csv": b"a,b\n1,2\n", "listing.pdf": bytes(range(256)) * 64}
    records = []
    for name, content in contents.items():
        (tmp_path / name).write_bytes(content)
        records.append(
            publish_report(
                local, tmp_path / name, report_name="Copied", mode="test", study_id=STUDY
            )
        )
    for path in local.root.rglob("*"):
        if path.is_file():
            key = PREFIX + path.relative_to(local.root).as_posix()
            s3_bucket.upload_file(str(path), BUCKET, key)

    copied = S3Store(s3_bucket, BUCKET, PREFIX)

    for record in records:
        assert copied.get_record(record.id) == record
        assert copied.open_range(record, 0, record.size).body.read() == contents[record.fileName]
    assert sorted(copied.job_ids()) == sorted(local.job_ids())


def _sha256_base64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_the_content_is_stored_with_the_sha256_publish_measured(publish, s3_bucket, store):
    sent: list[str] = []

    def capture(request, **_):
        if request.url.endswith(layout.content_key(JOB)):
            sent.append(request.headers["x-amz-checksum-sha256"].decode())

    store.client.meta.events.register("before-send.s3.PutObject", capture)
    record = publish(b"a,b\n1,2\n", "extract.csv", job_id=JOB)

    # S3 checks the bytes against this value and refuses a mismatch (BadDigest).
    assert sent == [base64.b64encode(bytes.fromhex(record.sha256)).decode()]
    head = s3_bucket.head_object(
        Bucket=BUCKET, Key=PREFIX + layout.content_key(JOB), ChecksumMode="ENABLED"
    )
    assert head["ChecksumSHA256"] == _sha256_base64(b"a,b\n1,2\n")


def test_the_upload_carries_the_records_digest_not_one_of_the_bytes_sent(publish, store):
    """A file that changed between measuring and uploading reaches S3 with the measured
    digest, so S3 refuses it rather than keeping bytes the record does not describe."""
    record = replace(publish(b"measured", job_id=JOB), id="0" * 32)
    sent: list[bytes] = []
    store.client.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append(request.headers.get("x-amz-checksum-sha256", b"")),
    )

    store.put(record, io.BytesIO(b"changed since"))

    assert _sha256_base64(b"measured").encode() in sent


def test_s3_refusing_the_digest_is_a_store_error_that_says_the_file_changed(store, tmp_path):
    store.client.meta.events.register("before-call.s3.PutObject", _answer(400, "BadDigest"))
    (tmp_path / "changing.csv").write_bytes(b"a\n")

    with pytest.raises(StoreError, match="SHA-256 is not the one measured"):
        publish_report(
            store, tmp_path / "changing.csv", report_name="Changing", mode="test", study_id=STUDY
        )


def test_a_file_in_parts_is_stored_whole_with_a_checksum_of_its_parts_checksums(
    tmp_path, s3_bucket
):
    store = S3Store(s3_bucket, BUCKET, PREFIX)
    store.SINGLE_PUT_LIMIT = 6 * 1024 * 1024
    store.PART_SIZE = 5 * 1024 * 1024  # S3's smallest part
    content = bytes(range(256)) * (12 * 4096)  # 12 MiB: three parts
    (tmp_path / "large.zip").write_bytes(content)

    record = publish_report(
        store, tmp_path / "large.zip", report_name="Large", mode="test", study_id=STUDY
    )

    assert store.open_range(record, 0, record.size).body.read() == content
    parts = [content[at : at + store.PART_SIZE] for at in range(0, len(content), store.PART_SIZE)]
    composite = _sha256_base64(b"".join(hashlib.sha256(part).digest() for part in parts))
    head = s3_bucket.head_object(
        Bucket=BUCKET, Key=PREFIX + layout.content_key(record.id), ChecksumMode="ENABLED"
    )
    assert head["ChecksumSHA256"].split("-")[0] == composite


def test_a_presigned_url_asks_s3_for_its_checksum_in_the_query_not_a_header(tmp_path, s3_bucket):
    sigv4 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
    store = S3Store(sigv4, BUCKET, PREFIX)
    record = _publish_small(store, tmp_path)

    query = parse_qs(urlsplit(store.presigned_url(record, 60, "attachment")).query)

    assert query["x-amz-checksum-mode"] == ["ENABLED"]
    assert query["X-Amz-SignedHeaders"] == ["host"]  # a client sends no header of ours


@pytest.fixture
def unreachable_store(s3_bucket) -> S3Store:
    """An S3Store whose endpoint refuses connections, retrying once at most."""
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    return S3Store(client, BUCKET, PREFIX)


@pytest.mark.parametrize(
    "operation",
    [
        lambda store, record: store.get_record(JOB),
        lambda store, record: store.open_range(record, 0, record.size),
        lambda store, record: store.size_of(record),
        lambda store, record: store.put(record, io.BytesIO(b"x")),
        lambda store, record: list(store.job_ids()),
    ],
    ids=["get_record", "open_range", "size_of", "put", "job_ids"],
)
def test_every_operation_raises_store_error_when_the_endpoint_is_unreachable(
    unreachable_store, publish, operation
):
    record = publish(job_id=JOB)

    with pytest.raises(StoreError):
        operation(unreachable_store, record)


def _answer(status: int, code: str):
    """A botocore before-call handler that answers every call with an S3 error."""

    def answer(**kwargs):
        parsed = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return AWSResponse(url="", status_code=status, headers={}, raw=None), parsed

    return answer


def test_a_publish_that_loses_the_race_raises_job_exists_and_keeps_the_winners_file(
    publish, store, s3_bucket
):
    original = publish(b"first", job_id=JOB)
    missed = _answer(404, "NoSuchKey")  # the existence check runs before a racer's write
    store.client.meta.events.register("before-call.s3.GetObject", missed)

    with pytest.raises(JobExists):
        publish(b"second", job_id=JOB)

    store.client.meta.events.unregister("before-call.s3.GetObject", missed)
    assert store.get_record(JOB) == original
    assert _object(s3_bucket, PREFIX + layout.content_key(JOB)) == b"first"


def test_put_raises_store_error_when_s3_refuses_the_write(store, tmp_path):
    store.client.meta.events.register("before-call.s3.PutObject", _answer(403, "AccessDenied"))
    (tmp_path / "refused.csv").write_bytes(b"a\n")

    with pytest.raises(StoreError):
        publish_report(
            store, tmp_path / "refused.csv", report_name="Refused", mode="test", study_id=STUDY
        )


def test_an_unreachable_store_answers_503_with_retry_after(unreachable_s3, token, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = create_app(unreachable_s3).test_client()

    response = client.get(
        "/ec-reporting-svc/rest/v2.0/reports/download",
        query_string={"id": JOB},
        headers={"Authorization": f"Bearer {token(f'{STUDY}:test:REPORTING_VIEW')}"},
    )

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    details = error_of(response)["details"]
    assert "127.0.0.1" not in details
    assert BUCKET not in details
    assert "jobs/" not in details


def test_the_prefix_is_normalised_to_one_trailing_slash(s3_bucket):
    assert S3Store(s3_bucket, BUCKET, "/a/b").key("jobs/X") == "a/b/jobs/X"
    assert S3Store(s3_bucket, BUCKET, "").key("jobs/X") == "jobs/X"
    assert S3Store(s3_bucket, BUCKET, "/").key("jobs/X") == "jobs/X"


def test_an_s3_app_writes_nothing_to_local_disk(publish, make_settings):
    publish(job_id=JOB)

    assert not Path(make_settings().local_root).exists()


def _count_calls(client) -> dict[str, int]:
    """Count the S3 operations ``client`` sends from now on, by name."""
    counts: dict[str, int] = {}

    def count(model, **kwargs) -> None:
        counts[model.name] = counts.get(model.name, 0) + 1

    client.meta.events.register("before-call.s3", count)
    return counts


def _publish_small(store: S3Store, folder: Path) -> JobRecord:
    """Publish a two-line report into ``store`` from a file written under ``folder``."""
    (folder / "r.csv").write_bytes(b"a,b\n1,2\n")
    return publish_report(store, folder / "r.csv", report_name="R", mode="test", study_id=STUDY)


def _signing_calls(client, monkeypatch) -> list[dict[str, Any]]:
    """The keyword arguments of every presigned URL ``client`` signs from now on, and the
    URL it signed under ``"url"``."""
    calls: list[dict[str, Any]] = []
    sign = client.generate_presigned_url

    def spy(*args: Any, **kwargs: Any) -> str:
        url = sign(*args, **kwargs)
        calls.append({**kwargs, "url": url})
        return url

    monkeypatch.setattr(client, "generate_presigned_url", spy)
    return calls


def test_a_repeat_lookup_within_the_cache_seconds_asks_s3_for_nothing(tmp_path, s3_bucket):
    store = S3Store(s3_bucket, BUCKET, PREFIX, cache_seconds=5)
    record = _publish_small(store, tmp_path)
    calls = _count_calls(s3_bucket)

    for _ in range(3):
        assert store.get_record(record.id) == record
        assert store.size_of(record) == record.size

    assert calls == {"GetObject": 1, "HeadObject": 1}


@pytest.mark.parametrize(("expires", "signed"), [(5, 1), (60, 1), (4, 3), (1, 3)])
def test_a_presigned_url_is_reused_for_a_second_only_when_it_keeps_most_of_its_life(
    tmp_path, s3_bucket, monkeypatch, expires, signed
):
    store = S3Store(s3_bucket, BUCKET, PREFIX)
    record = _publish_small(store, tmp_path)
    calls = _signing_calls(s3_bucket, monkeypatch)

    urls = {store.presigned_url(record, expires, "attachment") for _ in range(3)}

    assert len(calls) == signed
    assert all(call["ExpiresIn"] == expires for call in calls)
    assert urls == {call["url"] for call in calls}


def test_a_reused_url_is_signed_again_after_a_second(tmp_path, s3_bucket, monkeypatch):
    now = [1000.0]
    store = S3Store(s3_bucket, BUCKET, PREFIX)
    store.urls = Recent(s3.URL_REUSE_SECONDS, timer=lambda: now[0])
    record = _publish_small(store, tmp_path)
    calls = _signing_calls(s3_bucket, monkeypatch)

    store.presigned_url(record, 60, "attachment")
    now[0] += 0.9
    store.presigned_url(record, 60, "attachment")
    store.presigned_url(record, 60, "inline")
    now[0] += 0.2
    store.presigned_url(record, 60, "attachment")

    assert [call["Params"]["ResponseContentDisposition"] for call in calls] == [
        "attachment",
        "inline",
        "attachment",
    ]


def test_without_cache_seconds_every_lookup_asks_s3(tmp_path, s3_bucket):
    store = S3Store(s3_bucket, BUCKET, PREFIX)
    record = _publish_small(store, tmp_path)
    calls = _count_calls(s3_bucket)

    for _ in range(3):
        store.get_record(record.id)
        store.size_of(record)

    assert calls == {"GetObject": 3, "HeadObject": 3}


def test_the_service_remembers_s3_records_for_the_configured_seconds(make_settings, s3_bucket):
    app = create_app(make_settings(store="s3", s3_bucket=BUCKET, s3_cache_seconds=7))

    store = app.extensions["reporting_svc"].store

    assert store.records.cache.ttl == store.sizes.cache.ttl == 7


def test_a_withdrawal_reaches_a_process_that_remembered_none_within_its_cache_seconds(
    tmp_path, s3_bucket
):
    serving = S3Store(s3_bucket, BUCKET, PREFIX, cache_seconds=5)
    timer = Timer()
    serving.entries = Recent(5, timer=timer)
    withdrawing = S3Store(s3_bucket, BUCKET, PREFIX, cache_seconds=5)
    (tmp_path / "r.csv").write_bytes(b"a,b\n1,2\n")
    record = publish_report(
        serving, tmp_path / "r.csv", report_name="R", mode="test", study_id=STUDY
    )
    assert serving.withdrawal(record.id) is None
    calls = _count_calls(s3_bucket)

    withdrawing.create_entry(record.id, WITHDRAWAL)
    remembered = serving.withdrawal(record.id)
    timer.now = 5
    seen = serving.withdrawal(record.id)

    assert (remembered, seen) == (None, WITHDRAWAL)
    assert calls == {"PutObject": 1, "GetObject": 1}


def test_the_process_that_withdraws_sees_its_withdrawal_at_once(tmp_path, s3_bucket):
    store = S3Store(s3_bucket, BUCKET, PREFIX, cache_seconds=5)
    record = _publish_small(store, tmp_path)
    assert store.withdrawal(record.id) is None

    store.create_entry(record.id, WITHDRAWAL)

    assert store.withdrawal(record.id) == WITHDRAWAL
    assert store.remembers_for == 5


class Timer:
    """A timer the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_only_report_files_carry_the_tag_a_lifecycle_rule_selects(publish, s3_bucket, store):
    job = publish()
    store.create_entry(job.id, WITHDRAWAL)

    tagged = {
        key: s3_bucket.get_object_tagging(Bucket=BUCKET, Key=PREFIX + key)["TagSet"]
        for key in (layout.content_key(job.id), layout.record_key(job.id), layout.claim_key(job.id))
    }

    assert tagged == {
        layout.content_key(job.id): [{"Key": "reporting-svc", "Value": "content"}],
        layout.record_key(job.id): [],
        layout.claim_key(job.id): [],
    }
