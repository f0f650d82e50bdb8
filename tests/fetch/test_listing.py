"""The downloadList pager against a tiny server that speaks docs/api.md §5 exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from reporting_svc.api.paths import DOWNLOAD_LIST
from reporting_svc.fetch.credentials import TokenSource
from reporting_svc.fetch.listing import ListingError, list_runs
from reporting_svc.fetch.transport import Client
from tests.fetch.conftest import Recorder

Server = Callable[[Callable[[Request], Response]], Recorder]
STUDY = "CFD8129A430A473C8A02F4BA5DAAD865"


def run(number: int) -> dict[str, Any]:
    return {
        "downloadId": f"{number:032X}",
        "reportId": None,
        "reportName": "Subject Data Extract",
        "studyId": STUDY,
        "mode": "test",
        "rptFormat": "CSV",
        "status": "COMPLETED",
        "rptKickoffDatetime": "2025-06-04T11:27:52.014Z",
        "fileName": f"extract-{number}.csv",
        "size": number,
        "sha256": f"{number:064x}",
    }


def download_list(
    runs: list[dict[str, Any]], has_more: Callable[[int, int], str] | None = None
) -> Callable[[Request], Response]:
    """docs/api.md §5: a page of ``runs`` at limit/offset, hasMore as the string "true"/"false"."""

    def respond(request: Request) -> Response:
        assert request.path == DOWNLOAD_LIST
        limit, offset = int(request.args["limit"]), int(request.args["offset"])
        page = runs[offset : offset + limit]
        more = "true" if offset + len(page) < len(runs) else "false"
        result = {
            "hasMore": has_more(offset, len(page)) if has_more else more,
            "totalResults": len(runs),
            "count": len(page),
            "limit": limit,
            "offset": offset,
            "reportId": request.args.get("rptId"),
            "reportRunStatus": page,
        }
        body = {"status": "success", "errorData": None, "result": result}
        return Response(json.dumps(body), content_type="application/json")

    return respond


def pages(url: str, page_size: int, **query: str) -> list[str]:
    client = Client(url, TokenSource(None, {"REPORTING_SVC_TOKEN": "t"}), timeout=10)
    listed = list_runs(
        client, {"studyId": STUDY, **query}, lambda page: page(), page_size=page_size
    )
    return [job.downloadId for job, _ in listed]


def test_pages_until_has_more_is_false(server: Server) -> None:
    service = server(download_list([run(n) for n in range(1, 8)]))

    listed = pages(service.url, 3, mode="test")

    assert listed == [f"{n:032X}" for n in range(1, 8)]
    assert [(r.args["offset"], r.args["limit"]) for r in service.requests] == [
        ("0", "3"),
        ("3", "3"),
        ("6", "3"),
    ]
    assert all(r.args["mode"] == "test" and r.args["studyId"] == STUDY for r in service.requests)


def test_a_run_pushed_to_the_next_page_by_a_new_one_is_listed_once(server: Server) -> None:
    runs = [run(n) for n in range(1, 5)]

    def respond(request: Request) -> Response:
        if request.args["offset"] != "0":
            runs.insert(0, run(99))  # published while we paged: everything moves down one
        return download_list(runs)(request)

    listed = pages(server(respond).url, 2)

    assert listed == [f"{n:032X}" for n in range(1, 5)]


def test_an_empty_study_is_one_request(server: Server) -> None:
    service = server(download_list([]))

    assert pages(service.url, 50) == []
    assert len(service.requests) == 1


@pytest.mark.parametrize(
    "has_more",
    [lambda offset, count: "yes", lambda offset, count: True, lambda offset, count: "true"],
)
def test_a_listing_off_the_spec_fails_rather_than_loop_or_guess(
    server: Server, has_more: Callable[[int, int], Any]
) -> None:
    service = server(download_list([run(1)], has_more))

    with pytest.raises(ListingError):
        pages(service.url, 5)


@pytest.mark.parametrize("download_id", ["../../x", "", None])
def test_a_run_without_a_guid_download_id_fails_the_listing(
    server: Server, download_id: str | None
) -> None:
    service = server(download_list([{**run(1), "downloadId": download_id}]))

    with pytest.raises(ListingError, match="downloadId"):
        pages(service.url, 5)
