"""The session fixtures every live test shares: ONE local stack for the whole run (moto server,
the LwA/Ads emulator and the local gateway in front of the real handlers), a scripted browser and
an advertiser's flow. ``tests/conftest.py`` imports the fixtures, so integration and e2e tests
(and anything else) get the same session stack."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from local.browser import Browser
from local.openapi import DOCUMENT_PATH
from local.stack import LocalStack
from tests.conftest import remember


class ShiftClock:
    """Real time plus an offset that tests move forward (the emulator's clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(scope="session")
def emulator_clock() -> ShiftClock:
    return ShiftClock()


@pytest.fixture(scope="session")
def stack(emulator_clock):
    with LocalStack(clock=emulator_clock) as local:
        remember(local.client_secret)
        if getattr(local.gateway, "openapi", None) is None:  # the API's description, where tools reach it
            local.gateway.openapi = DOCUMENT_PATH.read_bytes()
        yield local


@pytest.fixture(autouse=True)
def _clean_emulator(request, emulator_clock):
    yield
    if "stack" not in request.fixturenames:
        return
    local = request.getfixturevalue("stack")
    harvest_sensitive(local)
    local.emulator.reset()
    emulator_clock.offset = 0.0


def harvest_sensitive(local: LocalStack) -> None:
    """Everything secret the emulator issued or saw during the test."""
    em = local.emulator
    with em._lock:
        remember(*em._codes.keys(), *em._refresh_tokens.keys(), *em._access_tokens.keys())
        for code in em._codes.values():
            remember(getattr(code.request, "state", None))


@pytest.fixture
def browser():
    """A fresh browser whose cookies (PKCE verifiers) and URL secrets are remembered afterwards."""
    made: list[Browser] = []

    def make() -> Browser:
        made.append(Browser())
        return made[-1]

    yield make
    for b in made:
        for cookie in b.session.cookies:
            remember(cookie.value)
        for response in b.history:
            for url in (response.url, response.headers.get("Location", "")):
                query = parse_qs(urlsplit(url).query)
                remember(*query.get("state", []), *query.get("code", []))
                if "/connect/" in url:
                    remember(urlsplit(url).path.rsplit("/", 1)[-1])


class Flow:
    """One advertiser's authorization, stepped through by a test."""

    def __init__(self, stack: LocalStack, browser: Browser, region: str = "NA") -> None:
        self.stack = stack
        self.browser = browser
        self.advertiser_id, self.link = stack.invite(region=region)
        self.connect = browser.get(self.link)
        assert self.connect.status_code == 302, self.connect.text
        self.authorize_url = self.connect.headers["Location"]
        self.state = parse_qs(urlsplit(self.authorize_url).query)["state"][0]
        remember(self.state)

    def consent(self, decision: str = "allow"):
        """Show the consent page and click; returns LwA's redirect to our callback (not followed)."""
        page = self.browser.get(self.authorize_url)
        assert page.status_code == 200, page.text
        answer = self.browser.click(page, "allow" if decision == "allow" else "deny")
        assert answer.status_code == 302
        self.callback_url = answer.headers["Location"]
        query = parse_qs(urlsplit(self.callback_url).query)
        self.code = query.get("code", [None])[0]
        remember(self.code)
        return answer

    def callback(self, url: str | None = None, browser: Browser | None = None):
        return (browser or self.browser).get(url or self.callback_url)

    def advertiser(self) -> dict:
        table = boto3.resource("dynamodb").Table("adsauth-local")
        return table.get_item(Key={"pk": f"ADV#{self.advertiser_id}", "sk": "META"})["Item"]


@pytest.fixture
def flow(stack, browser):
    def start(region: str = "NA") -> Flow:
        return Flow(stack, browser(), region)

    return start


def secret_names(prefix: str = "adsauth/local/advertisers/") -> set[str]:
    client = boto3.client("secretsmanager")
    names: set[str] = set()
    for page in client.get_paginator("list_secrets").paginate():
        names.update(s["Name"] for s in page["SecretList"] if s["Name"].startswith(prefix))
    return names


def state_items() -> list[dict]:
    table = boto3.resource("dynamodb").Table("adsauth-local")
    items = table.scan()["Items"]  # test-only inspection of the whole table
    return [i for i in items if i["pk"].startswith("STATE#")]


def into_a_new_pack(advertiser_id: str) -> str:
    """Move a connected advertiser of its own secrets into a new pack now, through the pack job
    ``migrate-layout`` runs (one LwA refresh); its new tokens are remembered as sensitive (the
    leak checks look for them). Returns the pack id."""
    from adsauth import packs, wiring
    from local.stack import stored_tokens

    job = packs.PackJob(packs.new_pack_id(), (), (advertiser_id,))
    assert [r.outcome for r in wiring.refresher().refresh_pack(job)] == ["refreshed"]
    found = stored_tokens(advertiser_id)
    assert found is not None and found["where"] == "pack" and found["pack"] == job.pack_id
    remember(found["refresh_token"], found["access_token"])
    return job.pack_id


def remembered_tokens(advertiser_id: str, **where) -> dict | None:
    """The advertiser's stored tokens wherever they are (``local.stack.stored_tokens``), remembered
    as sensitive (the leak checks look for them); None when neither place holds any."""
    from local.stack import stored_tokens

    found = stored_tokens(advertiser_id, **where)
    if found:
        remember(found["refresh_token"], found["access_token"])
    return found


def refresh_token_accepted(stack, token: str | None) -> bool:
    """Whether LwA (the emulator) would still refresh with ``token`` (known, its grant not revoked)."""
    em = stack.emulator
    with em._lock:
        grant = em._grants.get(em._refresh_tokens.get(token or "", ""))
        return grant is not None and not grant.revoked


def reauthorize(stack, browser, advertiser_id: str) -> None:
    """A new consent of a known advertiser: ``reinvite``, then the advertiser allows at Amazon."""
    from adsauth import wiring

    _, token = wiring.onboarding().reinvite(advertiser_id)
    remember(token)
    b = browser()
    authorize = b.get(stack.base_url + f"/connect/{token}").headers["Location"]
    answer = b.click(b.get(authorize), "allow")
    assert b.get(answer.headers["Location"]).status_code == 303
