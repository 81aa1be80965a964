"""The advertiser's journey in a real browser (headless Chromium) against the session's local
stack: the emailed link, the emulator's consent page, Allow or Cancel, our result page; and an
expired link. What the browser received is checked as the browser saw it: the security headers
of our responses (from Chrome's network log) and the binding cookie (from Chrome's cookie jar)."""

from __future__ import annotations

import time
from decimal import Decimal
from urllib.parse import urlsplit

import boto3
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from adsauth import oauth
from adsauth.pages import SECURITY_HEADERS
from local.stack import TABLE_NAME
from tests.conftest import remember

pytestmark = pytest.mark.slow

WAIT_SECONDS = 20
EXPECTED_HEADERS = {  # what each of our pages and redirects must carry, as the browser received it
    "content-security-policy": SECURITY_HEADERS["Content-Security-Policy"],
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
}


def table():
    return boto3.resource("dynamodb").Table(TABLE_NAME)


def advertiser_status(advertiser_id: str) -> str:
    return table().get_item(Key={"pk": f"ADV#{advertiser_id}", "sk": "META"})["Item"]["status"]


def wait_for(chrome, css: str):
    return WebDriverWait(chrome.driver, WAIT_SECONDS).until(ready.presence_of_element_located((By.CSS_SELECTOR, css)))


def page_key(chrome) -> str:
    return wait_for(chrome, "#page[data-page]").get_attribute("data-page")


def ours(chrome, stack) -> list[dict]:
    """Our API's responses the browser received, in order."""
    return [r for r in chrome.network() if r["url"].startswith(stack.base_url)]


def assert_security_headers(responses: list[dict]) -> None:
    assert responses, "the browser saw none of our responses"
    for response in responses:
        for name, value in EXPECTED_HEADERS.items():
            assert response["headers"].get(name) == value, (name, response["status"], urlsplit(response["url"]).path)


def binding_cookies(chrome) -> list[dict]:
    return [c for c in chrome.driver.get_cookies() if c["name"].startswith(oauth.COOKIE_PREFIX)]


def open_consent_page(chrome, stack, region: str = "NA") -> str:
    """Open a fresh invitation link; the browser ends on the emulator's consent page."""
    advertiser_id, link = stack.invite(name="Browser Outdoor", region=region)
    remember(urlsplit(link).path.rsplit("/", 1)[-1])
    chrome.driver.get(link)
    wait_for(chrome, "#allow")
    assert urlsplit(chrome.driver.current_url).path == f"/{region.lower()}/ap/oa"
    assert chrome.driver.find_element(By.ID, "client-id").text  # the consent page names who asks
    assert "advertising::campaign_management" in chrome.driver.find_element(By.ID, "scope").text
    return advertiser_id


def test_allow_lands_on_the_connected_page(chrome, stack):
    advertiser_id = open_consent_page(chrome, stack, "EU")
    cookies = binding_cookies(chrome)
    assert len(cookies) == 1, cookies
    cookie = cookies[0]
    assert cookie["httpOnly"] is True and cookie["secure"] is True and cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/" and not cookie["domain"].startswith(".")  # host-only, as __Host- requires

    chrome.driver.find_element(By.ID, "allow").click()
    assert page_key(chrome) == "connected"
    assert urlsplit(chrome.driver.current_url).path.endswith("/result/connected")
    assert urlsplit(chrome.driver.current_url).query == ""  # no code or state in the bar
    assert "connected" in chrome.driver.find_element(By.ID, "title").text
    # the strict CSP admits exactly our stylesheet (by its hash) and nothing had to be blocked
    assert chrome.driver.execute_script("return getComputedStyle(document.body).maxWidth") == "576px"
    assert not [m for m in chrome.console() if "Content Security Policy" in m]

    responses = ours(chrome, stack)
    routes = [(urlsplit(r["url"][len(stack.base_url):]).path.split("/")[1], r["status"]) for r in responses]
    assert routes == [("connect", 302), ("callback", 303), ("result", 200)]
    assert_security_headers(responses)
    # the code never travels further as a Referer: nothing after the callback names it
    after_callback = chrome.requests[[r["url"] for r in chrome.requests].index(responses[1]["url"]) + 1:]
    assert after_callback and all("code=" not in r["headers"].get("Referer", "") for r in after_callback)
    assert advertiser_status(advertiser_id) == "connected"
    assert [c["region"] for c in stack.emulator.calls if c["endpoint"] == "token"] == ["EU"]


def test_cancel_lands_on_the_declined_page(chrome, stack):
    advertiser_id = open_consent_page(chrome, stack)
    chrome.driver.find_element(By.ID, "deny").click()
    assert page_key(chrome) == "declined"
    assert urlsplit(chrome.driver.current_url).path.endswith("/result/declined")
    assert_security_headers(ours(chrome, stack))
    assert advertiser_status(advertiser_id) == "declined"
    assert stack.emulator.count("token") == 0


def test_an_expired_link_shows_the_friendly_expired_page(chrome, stack):
    advertiser_id, link = stack.invite(name="Late Outdoor")
    token = urlsplit(link).path.rsplit("/", 1)[-1]
    remember(token)
    table().update_item(
        Key={"pk": "INVITE#" + oauth.digest(token), "sk": "INVITE"},
        UpdateExpression="SET expires_at = :t",
        ExpressionAttributeValues={":t": Decimal(str(int(time.time()) - 60))},
    )
    chrome.driver.get(link)
    assert page_key(chrome) == "invitation_expired"
    assert "expired" in chrome.driver.find_element(By.ID, "title").text
    responses = ours(chrome, stack)
    assert [r["status"] for r in responses] == [410]
    assert_security_headers(responses)
    assert binding_cookies(chrome) == []  # no flow was started
    assert advertiser_status(advertiser_id) == "invited"
