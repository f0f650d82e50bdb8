"""The docs page in headless chromium with no network beyond 127.0.0.1: Redoc renders it.

A locked-down clinical network blocks CDNs, so the page must need nothing but the service.
Chromium resolves no host name and sends every non-loopback request to a proxy port where
nothing listens, so a request that left 127.0.0.1 fails and shows in the network log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from harness.processes import free_port
from reporting_svc.api.reports import download

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Generous: two cores shared with other test runs; Redoc parses a 1 MiB script first.
RENDER_WAIT = 90
# Collects the page's Content-Security-Policy violations from its first script on.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""
LOCAL_SCHEMES = {"blob", "data"}


def chromium_flags(profile: Path) -> list[str]:
    """Headless, no background traffic, a fresh profile, and no way off 127.0.0.1."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1024",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        # Loopback always bypasses a proxy; everything else meets a closed port.
        f"--proxy-server=http://127.0.0.1:{free_port()}",
    ]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Debian's chromium under its own chromedriver; both stopped when the test ends."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        missing = "chromium and chromium-driver (scripts/install-system-packages)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must have {missing}")
        pytest.skip(f"needs {missing}")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in chromium_flags(tmp_path / "profile"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def sent_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the page sent a request for, answered or not, from chromium's network log.

    A request chromium blocked itself (by the page's Content-Security-Policy) never left the
    browser and is not counted.
    """
    events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    blocked = {
        event["params"]["requestId"]
        for event in events
        if event["method"] == "Network.loadingFailed" and event["params"].get("blockedReason")
    }
    return [
        event["params"]["request"]["url"]
        for event in events
        if event["method"] == "Network.requestWillBeSent"
        and event["params"]["requestId"] not in blocked
    ]


def left_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in LOCAL_SCHEMES and parts.hostname != "127.0.0.1"


def test_docs_page_renders_every_operation_with_no_network_beyond_the_service(
    browser: webdriver.Chrome, serve: Callable[..., str], service_env: dict[str, str]
) -> None:
    base = serve(service_env)
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})
    sent_urls(browser)  # drains what chromium's own start page asked for

    browser.get(f"{base}/ec-reporting-svc/docs")
    rendered = WebDriverWait(browser, RENDER_WAIT).until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, '[id="operation/downloadReport"]')
        ),
        message="Redoc rendered no downloadReport operation",
    )

    summary = (download.__doc__ or "").strip()
    assert summary in rendered.text
    assert browser.find_elements(By.CSS_SELECTOR, '[id="operation/headReport"]')
    urls = sent_urls(browser)
    assert f"{base}/ec-reporting-svc/docs/redoc.standalone.js" in urls
    assert [url for url in urls if left_loopback(url)] == []
    # Redoc's footer shows Redocly's logo from their CDN; the policy blocks that image (Redoc
    # then hides it) and must block nothing the page needs.
    violations: list[str] = browser.execute_script("return window.cspViolations")
    assert {violation.split()[0] for violation in violations} <= {"img-src"}
