"""What each answer of Login with Amazon means, end to end on the local stack (moto, the LwA/Ads
emulator, the local gateway in front of the real handlers):

- every RFC 6749 §5.2 code, on both paths: the browser's callback and ``POST /token`` (the code
  exchange) and the refresh worker (the refresh grant). A refusal is never reported as an outage:
  a bad request about one advertiser's grant ends on a fixed page (or a 400) and the advertiser
  retries consent; a client or scope problem raises the platform alarm; nothing is retried and no
  refresh job goes round SQS (for an advertiser of its own secrets and for a pack's member: the
  stack runs the packed layout);
- an authorization code is never sent twice once it may have reached LwA (RFC 6749 §4.1.2);
- the callback's time budget: outbound calls end before the Lambda deadline less a margin, and
  every point where time can run out leaves the state machine consistent.

Token values are compared, never printed.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import pytest
import requests

from adsauth import oauth, packs, schema, wiring
from adsauth.adapters.table import PLATFORM_KEY
from local.faults import emulator_fault
from local.gateway import sign_request
from local.stack import CLIENT_ID, OPERATOR_KEYS, TABLE_NAME
from tests.conftest import remember
from tests.stack_fixtures import secret_names

PREFIX = "adsauth/local/advertisers/"
MANUAL_REDIRECT = "https://www.amazon.com/"  # where Amazon's manual flow sends the browser


def table():
    return boto3.resource("dynamodb").Table(TABLE_NAME)


def item(advertiser_id: str) -> dict:
    return table().get_item(Key=schema.advertiser_key(advertiser_id), ConsistentRead=True)["Item"]


def outcome(answer) -> str:
    location = answer.headers.get("Location", "")
    return location.rsplit("/", 1)[1] if answer.status_code == 303 and "/result/" in location else f"HTTP {answer.status_code}"


def exchanges(stack) -> int:
    return stack.emulator.count("token", grant_type="authorization_code")


def post_token(stack, body: dict) -> requests.Response:
    url, raw = f"{stack.base_url}/token", json.dumps(body)
    headers = sign_request("POST", url, raw, {"Content-Type": "application/json"}, credentials=OPERATOR_KEYS)
    return requests.post(url, data=raw, headers=headers, allow_redirects=False, timeout=40)


def settings(stack, **env: str):
    """The handlers' environment changed for the block (the adapters are built again)."""
    return stack.environment(**env)


@contextmanager
def gateway_timeout(stack, seconds: float):
    """The invocation's time: the gateway hands the handler a Lambda context with this much left
    (and answers 504 itself if the handler is not done by then, as API Gateway does)."""
    saved, stack.gateway.timeout = stack.gateway.timeout, seconds
    try:
        yield
    finally:
        stack.gateway.timeout = saved


def assert_link_connects(f) -> None:
    """The advertiser opens the invitation link again and completes consent."""
    consent = f.browser.open(f.link)
    assert consent.status_code == 200, "the invitation link no longer works"
    done = f.browser.follow(f.browser.click(consent, "allow"))
    assert 'data-page="connected"' in done.text
    assert item(f.advertiser_id)["status"] == "connected"


# --- 8. every §5.2 code on the callback --------------------------------------------------------------
# error -> (result page, the advertiser's status_reason, counts on the platform alarm)
CALLBACK_CASES = {
    "invalid_grant": ("retry", "code_rejected", False),
    "invalid_request": ("retry", "request_rejected", False),
    "some_new_error": ("retry", "lwa_refused", False),  # unknown codes: a refusal, never an outage
    "invalid_client": ("failed", "client_misconfigured", True),
    "unauthorized_client": ("failed", "unauthorized_client", True),
    "invalid_scope": ("failed", "invalid_scope", True),
    "unsupported_grant_type": ("failed", "unsupported_grant_type", True),
}


@pytest.mark.parametrize("error", list(CALLBACK_CASES))
def test_each_token_error_on_the_callback_means_what_it_says(stack, flow, capsys, error):
    page, reason, alarm = CALLBACK_CASES[error]
    f = flow()
    f.consent()
    before = exchanges(stack)
    capsys.readouterr()
    with emulator_fault(stack.emulator, "token", "refuse", error=error, times=None):
        answer = f.callback()
    assert outcome(answer) == page
    adv = item(f.advertiser_id)
    assert (adv["status"], adv["status_reason"]) == ("failed", reason)
    assert exchanges(stack) == before + 1  # a refusal is never retried
    assert not any(f.advertiser_id in name for name in secret_names(PREFIX))
    metrics = capsys.readouterr().out
    assert ("LwaInvalidClient" in metrics) is alarm
    assert outcome(f.callback()) == page  # the browser's replay: the same answer, no new exchange
    assert exchanges(stack) == before + 1
    assert_link_connects(f)  # once LwA accepts again, the same invitation completes


def test_a_missing_verifier_is_invalid_request_and_answered_400(stack, browser):
    """A code issued for a PKCE challenge, pasted into the manual flow (which sends no verifier):
    the emulator answers ``invalid_request`` (RFC 6749 §5.2) as a strict server does, and
    ``POST /token`` says so with a 400, not a 503."""
    stack.emulator.register_client(CLIENT_ID, stack.client_secret, [stack.callback_url, MANUAL_REDIRECT])
    try:
        challenge = oauth.s256(oauth.new_verifier())
        query = urlencode({"client_id": CLIENT_ID, "scope": "advertising::campaign_management", "response_type": "code",
                           "redirect_uri": MANUAL_REDIRECT, "state": oauth.new_state(), "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        b = browser()
        answer = b.click(b.get(f"{stack.emulator.base_url}/na/ap/oa?{query}"), "allow")
        code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
        remember(code)
        advertiser_id, _ = stack.invite()
        answer = post_token(stack, {"code": code, "redirect_uri": MANUAL_REDIRECT, "region": "NA",
                                    "advertiser": advertiser_id})
    finally:
        stack.emulator.register_client(CLIENT_ID, stack.client_secret, [stack.callback_url])
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    assert "malformed" in answer.json()["message"]
    assert (item(advertiser_id)["status"], item(advertiser_id)["status_reason"]) == ("failed", "request_rejected")


# error -> (HTTP status, error field) of POST /token
MANUAL_CASES = {
    "invalid_grant": (400, "invalid_grant"),
    "invalid_request": (400, "invalid_request"),
    "some_new_error": (400, "invalid_request"),
    "invalid_client": (500, "client_misconfigured"),
    "unauthorized_client": (500, "client_misconfigured"),
    "invalid_scope": (500, "client_misconfigured"),
    "unsupported_grant_type": (500, "client_misconfigured"),
}


@pytest.mark.parametrize("error", list(MANUAL_CASES))
def test_each_token_error_on_post_token_is_a_refusal_not_an_outage(stack, capsys, error):
    advertiser_id, _ = stack.invite()
    before = exchanges(stack)
    capsys.readouterr()
    with emulator_fault(stack.emulator, "token", "refuse", error=error, times=None):
        answer = post_token(stack, {"code": "a-code-LwA-refuses-" + "x" * 12, "redirect_uri": "https://www.amazon.com/",
                                    "region": "NA", "advertiser": advertiser_id})
    assert (answer.status_code, answer.json()["error"]) == MANUAL_CASES[error]
    assert answer.json()["message"] and "x" * 12 not in answer.text  # fixed messages, nothing echoed
    assert exchanges(stack) == before + 1
    assert ("LwaInvalidClient" in capsys.readouterr().out) is (answer.status_code == 500)
    assert item(advertiser_id)["status"] == "failed"


# --- 8. every §5.2 code on the refresh ---------------------------------------------------------------
@pytest.fixture(params=["own", "pack"])
def refresh_job(stack, flow, emulator_clock, request):
    """A connected advertiser whose token is due, in its own secrets or (``pack``) a pack's
    member, and ``run()``: its job (the advertiser's, or its pack's) through SQS and the real
    worker (not the dispatcher): returns the drain report."""
    scheduler = stack.scheduler()
    scheduler.clear()
    f = flow()
    f.consent()
    assert outcome(f.callback()) == "connected"
    wiring.clock = emulator_clock
    wiring.refresher.cache_clear()
    body = json.dumps({"advertiser_id": f.advertiser_id})
    if request.param == "pack":  # moved into a new pack first, as migrate-layout does (one refresh)
        job = packs.PackJob(packs.new_pack_id(), (), (f.advertiser_id,))
        assert [r.outcome for r in wiring.refresher().refresh_pack(job)] == ["refreshed"]
        assert item(f.advertiser_id)["pack"] == job.pack_id
        body = packs.PackJob(job.pack_id, (f.advertiser_id,)).body()
    emulator_clock.offset += 3000  # the access token is due

    def run():
        boto3.client("sqs").send_message(QueueUrl=stack.queue_url, MessageBody=body)
        return scheduler.drain()

    yield f.advertiser_id, run, scheduler
    wiring.clock = time.time
    table().delete_item(Key=PLATFORM_KEY)
    table().update_item(Key=schema.advertiser_key(f.advertiser_id), UpdateExpression="REMOVE due_pk, due_sk")
    for profile in wiring.store().list_profiles(f.advertiser_id):
        table().delete_item(Key=schema.profile_key(f.advertiser_id, profile.region.value, profile.profile_id))
    scheduler.clear()
    scheduler.clear(stack.dlq_url)


# error -> (advertiser status, last_refresh_error, platform paused, metric)
REFRESH_CASES = {
    "invalid_grant": ("needs_reauth", None, False, "NeedsReauth"),
    "invalid_request": ("connected", "invalid_request", False, "RefreshFailed"),
    "some_new_error": ("connected", "lwa_refused", False, "RefreshFailed"),
    "invalid_client": ("connected", "invalid_client", True, "LwaInvalidClient"),
    "unauthorized_client": ("connected", "unauthorized_client", True, "LwaInvalidClient"),
    "invalid_scope": ("connected", "invalid_scope", True, "LwaInvalidClient"),
    "unsupported_grant_type": ("connected", "unsupported_grant_type", True, "LwaInvalidClient"),
}


@pytest.mark.parametrize("error", list(REFRESH_CASES))
def test_each_token_error_on_a_refresh_is_final_for_the_job_and_never_churns(stack, refresh_job, capsys, error):
    advertiser_id, run, scheduler = refresh_job
    status, last_error, paused, metric = REFRESH_CASES[error]
    calls = stack.emulator.count("token", grant_type="refresh_token")
    capsys.readouterr()
    with emulator_fault(stack.emulator, "token", "refuse", error=error, times=None):
        report = run()
    assert (report.processed, report.failed) == (1, 0)  # acknowledged: SQS does not deliver it again
    assert scheduler.depth() == 0 and scheduler.depth(stack.dlq_url) == 0
    assert stack.emulator.count("token", grant_type="refresh_token") == calls + 1  # and no HTTP retry
    adv = item(advertiser_id)
    assert adv["status"] == status
    if last_error:
        assert adv.get("last_refresh_error") == last_error
    flag = table().get_item(Key=PLATFORM_KEY).get("Item")
    assert (flag is not None) is paused
    if paused:
        assert flag["reason"] == error
    assert metric in capsys.readouterr().out


# --- 9. a code is never sent twice --------------------------------------------------------------------
def test_a_code_lwa_processed_but_answered_late_is_not_sent_again(stack, flow):
    """LwA used the code and issued tokens; its answer came after our read timeout. Sending the
    code again would present a used code (the emulator, like a strict server, then revokes what
    it issued): it is not sent again; the advertiser retries with the link."""
    with settings(stack, HTTP_TIMEOUT_SECONDS="0.5"):
        f = flow()
        f.consent()
        before = exchanges(stack)
        with emulator_fault(stack.emulator, "token", "late", times=1, timeout_sleep_s=1.0):
            answer = f.callback()
        time.sleep(1.5)  # the late answer, and any resend, have been counted by now
        assert exchanges(stack) == before + 1, "the code was sent again"
        assert outcome(answer) == "retry"
        adv = item(f.advertiser_id)
        assert (adv["status"], adv["status_reason"]) == ("failed", "amazon_unavailable")
        assert not any(f.advertiser_id in name for name in secret_names(PREFIX))
        assert_link_connects(f)


# --- 10. the callback's time budget -------------------------------------------------------------------
def test_no_time_left_before_the_exchange_spends_nothing_and_releases_the_flow(stack, flow):
    f = flow()
    f.consent()
    before = exchanges(stack)
    with settings(stack, CALLBACK_MARGIN_SECONDS="28.9"), gateway_timeout(stack, 29.0):
        answer = f.callback()  # the invocation has 29 s, all of them kept as the margin
    assert exchanges(stack) == before, "the code was sent without time to use the answer"
    assert outcome(answer) == "retry"
    adv = item(f.advertiser_id)
    assert (adv["status"], adv["status_reason"]) == ("failed", "out_of_time")
    assert not any(f.advertiser_id in name for name in secret_names(PREFIX))
    assert_link_connects(f)


def test_an_exchange_that_outlasts_the_budget_ends_on_the_retry_page(stack, flow):
    """A slow LwA (the answer would come after the invocation's end): the read timeout shrinks to
    the deadline and the browser gets the retry page, not the gateway's 504."""
    with settings(stack, HTTP_TIMEOUT_SECONDS="10", CALLBACK_MARGIN_SECONDS="1.5"):
        f = flow()
        f.consent()
        before = exchanges(stack)
        with gateway_timeout(stack, 5.0), emulator_fault(stack.emulator, "token", "late", times=1, timeout_sleep_s=8.0):
            answer = f.callback()
        assert outcome(answer) == "retry"
        adv = item(f.advertiser_id)
        assert (adv["status"], adv["status_reason"]) == ("failed", "amazon_unavailable")
        assert exchanges(stack) == before + 1
        assert not any(f.advertiser_id in name for name in secret_names(PREFIX))
        assert_link_connects(f)


def test_tokens_arrived_but_no_time_for_the_profiles_connects_and_lists_them_later(stack, flow, emulator_clock):
    """The grant is stored and the advertiser connected; the regions whose listing could not
    finish in time are pending, and the refresher lists them on its next run."""
    with settings(stack, HTTP_TIMEOUT_SECONDS="10", CALLBACK_MARGIN_SECONDS="2"):
        f = flow()
        f.consent()
        with gateway_timeout(stack, 6.0), emulator_fault(stack.emulator, "profiles", "latency", times=None,
                                                          latency_ms=9000):
            answer = f.callback()
        assert outcome(answer) == "connected"
        adv = item(f.advertiser_id)
        assert adv["status"] == "connected" and sorted(adv["pending_regions"]) == ["EU", "FE", "NA"]
        assert {f"{PREFIX}refresh/{f.advertiser_id}", f"{PREFIX}access/{f.advertiser_id}"} <= secret_names(PREFIX)
    wiring.clock = emulator_clock
    wiring.refresher.cache_clear()
    try:
        emulator_clock.offset += 901  # a pending region is asked again after 15 minutes
        result = wiring.refresher().refresh(f.advertiser_id)
        assert result.outcome == "refreshed" and result.profiles is not None
        assert item(f.advertiser_id)["pending_regions"] == []
        assert {p.region.value for p in wiring.store().list_profiles(f.advertiser_id)} == {"NA", "EU", "FE"}
    finally:
        wiring.clock = time.time
        table().update_item(Key=schema.advertiser_key(f.advertiser_id), UpdateExpression="REMOVE due_pk, due_sk")
        for profile in wiring.store().list_profiles(f.advertiser_id):
            table().delete_item(Key=schema.profile_key(f.advertiser_id, profile.region.value, profile.profile_id))
