"""Finding a job: a stored record is believed only for the key it was found under (issue 10)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from reporting_svc.storage import JobRecord, Store, layout
from reporting_svc.storage.local import LocalStore
from reporting_svc.storage.s3 import S3Store
from tests.support import BUCKET, OTHER_STUDY, STUDY, error_of

OWN = b"subjectId\nS-0001\n"
VICTIM = b"subjectId\nS-9999\n"
WriteRecord = Callable[[str, bytes], None]


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, make_settings: Callable[..., Any]) -> Any:
    """The test app on each store: local disk, and S3 through moto."""
    if request.param == "s3":
        request.getfixturevalue("s3_bucket")
        return make_settings(store="s3", s3_bucket=BUCKET, s3_region="us-east-1")
    return make_settings()


@pytest.fixture
def write_record(store: Store) -> WriteRecord:
    """Replace a job's ``record.json`` by hand, as anyone with write access to the store could."""

    def write(job_id: str, data: bytes) -> None:
        key = layout.record_key(job_id)
        if isinstance(store, LocalStore):
            (store.root / key).write_bytes(data)
        else:
            assert isinstance(store, S3Store)
            store.client.put_object(Bucket=store.bucket, Key=store.key(key), Body=data)

    return write


def mismatches() -> float:
    return REGISTRY.get_sample_value("reporting_store_errors_total", {"kind": "mismatch"}) or 0.0


def assert_store_fault(response: Any, *withheld: bytes) -> None:
    """A 500 envelope that carries none of the given file contents."""
    assert response.status_code == 500
    assert error_of(response)["errorMessage"] == "Report file unavailable"
    for content in withheld:
        assert content not in response.data


def test_a_record_naming_another_job_is_a_store_fault_never_its_file(
    publish: Callable[..., JobRecord],
    write_record: WriteRecord,
    bearer: str,
    download: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    own = publish(OWN)
    victim = publish(VICTIM, study_id=OTHER_STUDY)
    # The other study's record, moved into a job this caller may open: size and digest
    # match the victim's file, so only the id betrays it.
    write_record(own.id, replace(victim, studyId=STUDY).to_json())
    before = mismatches()

    with caplog.at_level(logging.ERROR):
        response = download({"id": own.id}, bearer)

    assert_store_fault(response, VICTIM, OWN)
    assert mismatches() == before + 1
    assert f"the record stored for job {own.id} names another job" in caplog.text
    assert victim.id not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"id": "%s"}', id="fields-missing"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
def test_an_unreadable_record_is_a_store_fault(
    publish: Callable[..., JobRecord],
    write_record: WriteRecord,
    bearer: str,
    download: Callable[..., Any],
    data: bytes,
) -> None:
    own = publish(OWN)
    write_record(own.id, data.replace(b"%s", own.id.encode()))
    before = mismatches()

    response = download({"id": own.id}, bearer)

    assert_store_fault(response, OWN)
    assert mismatches() == before + 1


def test_a_record_under_its_own_key_is_served(
    publish: Callable[..., JobRecord], bearer: str, download: Callable[..., Any]
) -> None:
    own = publish(OWN)

    response = download({"id": own.id}, bearer)

    assert response.status_code == 200
    assert response.data == OWN
