"""A real browser: Debian's headless Chromium driven by Selenium through Debian's chromedriver
(never a downloaded browser). ``make test`` installs both when missing and the machine allows it
(``make browser``). Without them the browser tests are skipped with the reason, except in CI
(``CI=true``), where a missing browser is a failure.

On a failure the page is saved as a screenshot in ``test-artifacts/``. The outcome goes to the
proof registry (``browser=passed|failed``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import remember
from tests.proof import record_browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1024,800",
)


@pytest.fixture(scope="session")
def chromium() -> str:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        reason = (f"headless Chromium is not installed ({', '.join(missing)} missing): `make browser` installs "
                  "Debian's chromium and chromium-driver (needs root and apt-get)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; in CI a missing browser is a failure, not a skip", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


class Chrome:
    """The driver plus what the browser saw on the network (Chrome's performance log)."""

    def __init__(self, driver) -> None:
        self.driver = driver
        self.responses: list[dict] = []  # {"url", "status", "headers"} of every document response
        self.requests: list[dict] = []  # {"url", "headers"}

    def network(self) -> list[dict]:
        """Read the performance log gathered since the last call; return all responses seen."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                if "redirectResponse" in params:  # a redirect's response comes with the next request
                    self._response(params["redirectResponse"])
                self.requests.append({"url": params["request"]["url"], "headers": params["request"]["headers"]})
            elif message["method"] == "Network.responseReceived":
                self._response(params["response"])
        return self.responses

    def console(self) -> list[str]:
        """The console messages since the last call (CSP violations are reported there)."""
        return [entry["message"] for entry in self.driver.get_log("browser")]

    def _response(self, response: dict) -> None:
        headers = {name.lower(): value for name, value in response.get("headers", {}).items()}
        self.responses.append({"url": response["url"], "status": response["status"], "headers": headers})

    def remember_secrets(self) -> None:
        """Everything secret this browser held or sent joins the suite-wide leak scan."""
        self.network()
        for url in [r["url"] for r in self.requests] + [r["headers"].get("location", "") for r in self.responses]:
            query = parse_qs(urlsplit(url).query)
            remember(*query.get("state", []), *query.get("code", []))  # (the challenge is public)
            if "/connect/" in url:
                remember(urlsplit(url).path.rsplit("/", 1)[-1])
        for response in self.responses:
            cookie = response["headers"].get("set-cookie", "")
            remember(*re.findall(r"__Host-adsauth-[0-9a-f]+=([^;\s]+)", cookie))
        try:
            remember(*(c["value"] for c in self.driver.get_cookies()))
        except Exception:  # the window may be gone after a failure
            pass


@pytest.fixture
def chrome(chromium, tmp_path, monkeypatch):
    from selenium import webdriver

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try the network
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    session = Chrome(driver)
    try:
        yield session
    finally:
        session.remember_secrets()
        driver.quit()


def _is_browser_test(item: pytest.Item) -> bool:
    return "chrome" in getattr(item, "fixturenames", ())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if not _is_browser_test(item):
        return report
    if report.failed:
        record_browser("failed")
        chrome = item.funcargs.get("chrome") if hasattr(item, "funcargs") else None
        if chrome is not None and report.when == "call":
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
            try:
                # a picture only: the page source of the consent page would hold the state
                chrome.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
            except Exception as exc:  # the browser itself may be what failed
                report.sections.append(("screenshot", f"no screenshot: {type(exc).__name__}"))
    elif report.skipped and report.when == "setup":
        record_browser("skipped")
    elif report.passed and report.when == "call":
        record_browser("passed")
    return report
