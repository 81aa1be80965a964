"""Hostile and malformed input at every public route: each gets a fixed error, makes no token call
and stores or changes nothing (security requirements 1, 3, 4 and 6)."""

from __future__ import annotations

import json
import secrets
import time
from decimal import Decimal
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import boto3
import pytest
import requests

from adsauth import oauth
from local.browser import Browser
from local.gateway import sign_request
from local.stack import CLIENT_ID, OPERATOR_KEYS, TABLE_NAME
from tests.conftest import remember
from tests.integration.conftest import secret_names, state_items
from tests.proof import record_attack

HOSTILE = "<script>alert(1)</script>"
EVIL = "evil.example"
MANUAL_REDIRECT = "https://www.amazon.com/"
SECURITY_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
LONG_STATE, ODD_STATE, LONG_CODE, ODD_CODE = "S" * 10_000, "é" * 43, "C" * 10_000, "ü" * 20
remember(LONG_STATE, ODD_STATE, LONG_CODE, ODD_CODE)  # made-up states and codes join the leak scan


# --- helpers -----------------------------------------------------------------------------------
def table():
    return boto3.resource("dynamodb").Table(TABLE_NAME)


def status_of(advertiser_id: str) -> str:
    return table().get_item(Key={"pk": f"ADV#{advertiser_id}", "sk": "META"})["Item"]["status"]


def state_item(state: str) -> dict | None:
    return table().get_item(Key={"pk": "STATE#" + oauth.digest(state), "sk": "STATE"}).get("Item")


def fake(n: int = 32) -> str:
    """A made-up code/state/token, registered for the suite-wide leak scan."""
    value = secrets.token_urlsafe(n)
    remember(value)
    return value


def callback_url(stack, params: list | dict | str) -> str:
    return f"{stack.callback_url}?{params if isinstance(params, str) else urlencode(params)}"


def binding(f) -> tuple[str, str]:
    """The flow's binding cookie (name, verifier) as its browser holds it."""
    name = oauth.cookie_name(oauth.digest(f.state))
    return name, f.browser.session.cookies.get(name)


def security_headers(response) -> None:
    for header, value in SECURITY_HEADERS.items():
        assert response.headers.get(header) == value, header
    assert "default-src 'none'" in response.headers.get("Content-Security-Policy", "")


def assert_page(response, key: str, status: int = 400) -> None:
    assert response.status_code == status, response.text[:300]
    assert f'data-page="{key}"' in response.text
    assert response.headers["Content-Type"].startswith("text/html")
    security_headers(response)
    assert "<script" not in response.text.lower() and "alert(" not in response.text
    assert "Location" not in response.headers


def assert_result_redirect(stack, response, outcome: str) -> None:
    assert response.status_code == 303, response.text[:300]
    assert response.headers["Location"] == f"{stack.base_url}/result/{outcome}"
    security_headers(response)
    for value in response.headers.values():
        assert "script" not in value.lower() and EVIL not in value


class Snapshot:
    """Token calls, advertiser secrets, advertisers' status and the flows' states, taken now."""

    def __init__(self, stack, *flows) -> None:
        self.stack, self.flows = stack, flows
        self.tokens = stack.emulator.count("token")
        self.secrets = secret_names()
        self.status = [f.advertiser()["status"] for f in flows]

    def unchanged(self) -> None:
        assert self.stack.emulator.count("token") == self.tokens, "a token call reached LwA"
        assert secret_names() == self.secrets, "an advertiser secret was created"
        assert [f.advertiser()["status"] for f in self.flows] == self.status
        for f in self.flows:
            item = state_item(f.state)
            assert item is not None and "consumed_at" not in item, "the state was consumed"


# --- GET /callback: the state and its browser binding ------------------------------------------
STATE_CASES = {
    "missing": lambda f: [("code", f.code)],
    "forged": lambda f: [("state", fake()), ("code", f.code)],
    "oversized": lambda f: [("state", LONG_STATE), ("code", f.code)],
    "non_ascii": lambda f: [("state", ODD_STATE), ("code", f.code)],
    "hostile": lambda f: [("state", HOSTILE), ("code", f.code)],
    "not_utf8": lambda f: f"state=%FF%FE{'A' * 41}&code={quote(f.code)}",
}
STATE_ATTACKS = {"missing": "state:missing", "forged": "state:forged", "oversized": "oversized_input",
                 "non_ascii": "state:malformed", "hostile": "xss:state", "not_utf8": "state:malformed"}


@pytest.mark.parametrize("case", STATE_CASES)
def test_bad_state_is_refused_before_any_token_call(stack, flow, case):
    f = flow()
    f.consent()
    before = Snapshot(stack, f)
    answer = f.browser.get(callback_url(stack, STATE_CASES[case](f)))  # the real cookie is sent
    record_attack(STATE_ATTACKS[case], answer.status_code != 400 or stack.emulator.count("token") > 0)
    assert_page(answer, "state_invalid")
    assert stack.emulator.count("token") == 0
    before.unchanged()


def test_expired_state_is_refused(stack, flow):
    f = flow()
    f.consent()
    table().update_item(
        Key={"pk": "STATE#" + oauth.digest(f.state), "sk": "STATE"},
        UpdateExpression="SET created_at = :t",
        ExpressionAttributeValues={":t": Decimal(str(int(time.time()) - 601))},
    )
    before = Snapshot(stack, f)
    answer = f.callback()
    record_attack("state:expired", answer.status_code != 400 or stack.emulator.count("token") > 0)
    assert_page(answer, "state_expired")
    assert stack.emulator.count("token") == 0
    before.unchanged()


def test_state_without_its_cookie_is_refused(stack, flow, browser):
    f = flow()
    f.consent()
    before = Snapshot(stack, f)
    other = browser()  # another browser, no cookie at all
    answer = f.callback(browser=other)
    declined = other.get(callback_url(stack, {"error": "access_denied", "state": f.state}))
    record_attack("cookie:missing", {answer.status_code, declined.status_code} != {400}
                  or stack.emulator.count("token") > 0 or f.advertiser()["status"] != before.status[0])
    assert_page(answer, "state_unbound")
    assert_page(declined, "state_unbound")  # nobody else can decline (or fail) this flow
    assert stack.emulator.count("token") == 0
    before.unchanged()


def test_state_with_another_flows_verifier_is_refused(stack, flow):
    a, b = flow(), flow()
    a.consent()
    b.consent()
    before = Snapshot(stack, a, b)
    name_a, _ = binding(a)
    _, verifier_b = binding(b)
    cookie = {"Cookie": f"{name_a}={verifier_b}"}
    forged = requests.get(a.callback_url, headers=cookie, allow_redirects=False, timeout=15)
    # B's browser (which holds only B's cookie) presenting A's callback
    crossed = a.callback(browser=b.browser)
    record_attack("cookie:foreign", {forged.status_code, crossed.status_code} != {400}
                  or stack.emulator.count("token") > 0)
    assert_page(forged, "state_unbound")
    assert_page(crossed, "state_unbound")
    assert stack.emulator.count("token") == 0
    before.unchanged()


def test_replayed_state_is_refused_and_the_same_callback_is_idempotent(stack, flow):
    f = flow()
    f.consent()
    name, verifier = binding(f)
    cookie = {"Cookie": f"{name}={verifier}"}  # a double submit still carries the cookie
    first = f.callback()
    assert_result_redirect(stack, first, "connected")
    assert stack.emulator.count("token") == 1
    secrets_after = secret_names()
    other_code = fake(24)
    replay = requests.get(
        callback_url(stack, {"code": other_code, "scope": "advertising::campaign_management", "state": f.state}),
        headers=cookie, allow_redirects=False, timeout=15,
    )
    record_attack("state:replayed", replay.status_code != 400 or stack.emulator.count("token") > 1)
    assert_page(replay, "state_replayed")
    assert other_code not in replay.text
    again = requests.get(f.callback_url, headers=cookie, allow_redirects=False, timeout=15)
    record_attack("code:double_submit", stack.emulator.count("token") > 1)
    assert again.status_code == first.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]
    assert stack.emulator.count("token") == 1, "a replay made a second exchange"
    assert secret_names() == secrets_after
    assert f.advertiser()["status"] == "connected"


# --- GET /callback: LwA's error redirect ---------------------------------------------------------
@pytest.mark.parametrize(
    "error, outcome, status, reason",
    [
        ("access_denied", "declined", "declined", "access_denied"),
        ("invalid_request", "failed", "failed", "invalid_request"),
        ("unauthorized_client", "failed", "failed", "unauthorized_client"),
        ("unsupported_response_type", "failed", "failed", "unsupported_response_type"),
        ("invalid_scope", "failed", "failed", "invalid_scope"),
        ("server_error", "retry", "failed", "server_error"),
        ("temporarily_unavailable", "retry", "failed", "temporarily_unavailable"),
        pytest.param(HOSTILE, "failed", "failed", "authorization_error", id="unknown-script"),
        pytest.param("x" * 5000, "failed", "failed", "authorization_error", id="unknown-oversized"),
    ],
)
def test_authorization_errors_are_classified_never_reflected(stack, flow, error, outcome, status, reason):
    f = flow()
    before = secret_names()
    answer = f.browser.get(callback_url(stack, {"error": error, "error_description": HOSTILE, "state": f.state}))
    assert_result_redirect(stack, answer, outcome)
    page = f.browser.follow(answer)
    reflected = any(HOSTILE in r.text or "<script" in r.text or HOSTILE in str(r.headers) for r in (answer, page))
    record_attack("xss:error_description", reflected or stack.emulator.count("token") > 0)
    if error == HOSTILE:
        record_attack("xss:error", reflected)
    elif len(error) > 1000:
        record_attack("oversized_input", reflected or answer.status_code >= 500)
    assert page.status_code == 200 and f'data-page="{outcome}"' in page.text
    assert HOSTILE not in page.text and "<script" not in page.text
    security_headers(page)
    advertiser = f.advertiser()
    assert (advertiser["status"], advertiser["status_reason"]) == (status, reason)
    assert "script" not in json.dumps(advertiser, default=str)
    assert stack.emulator.count("token") == 0
    assert secret_names() == before


# --- GET /callback: the code ----------------------------------------------------------------------
def test_replayed_code_in_a_new_flow_is_refused_by_lwa(stack, flow):
    old = flow()
    old.consent()
    assert_result_redirect(stack, old.callback(), "connected")
    new = flow()
    before = Snapshot(stack, new)
    answer = new.browser.get(
        callback_url(stack, {"code": old.code, "scope": "advertising::campaign_management", "state": new.state})
    )
    record_attack("code:replayed", new.advertiser()["status"] == "connected" or secret_names() != before.secrets)
    assert_result_redirect(stack, answer, "retry")
    calls = [c for c in stack.emulator.calls if c["endpoint"] == "token"]
    assert stack.emulator.count("token") == before.tokens + 1 and calls[-1]["status"] == 400
    advertiser = new.advertiser()
    assert (advertiser["status"], advertiser["status_reason"]) == ("failed", "code_rejected")
    assert secret_names() == before.secrets
    assert not any(new.advertiser_id in name for name in secret_names())


CODE_CASES = {
    "oversized_code": lambda f: [("code", LONG_CODE), ("state", f.state)],
    "non_ascii_code": lambda f: [("code", ODD_CODE), ("state", f.state)],
    "code_with_space": lambda f: [("code", "abc def " + HOSTILE), ("state", f.state)],
    "duplicated_state": lambda f: [("code", f.code), ("state", f.state), ("state", f.state)],
    "duplicated_state_other": lambda f: [("code", f.code), ("state", fake()), ("state", f.state)],
    "duplicated_code": lambda f: [("code", f.code), ("code", fake(24)), ("state", f.state)],
    "duplicated_error": lambda f: [("error", "access_denied"), ("error", "server_error"), ("state", f.state)],
    "neither_code_nor_error": lambda f: [("scope", "advertising::campaign_management"), ("state", f.state)],
    "empty_code": lambda f: [("code", ""), ("state", f.state)],
}
CODE_ATTACKS = {"oversized_code": "oversized_input", "non_ascii_code": "code:malformed",
                "code_with_space": "xss:code", "duplicated_state": "parameter_pollution",
                "duplicated_state_other": "parameter_pollution", "duplicated_code": "parameter_pollution",
                "duplicated_error": "parameter_pollution", "neither_code_nor_error": "code:missing",
                "empty_code": "code:missing"}


@pytest.mark.parametrize("case", CODE_CASES)
def test_malformed_callback_query_is_an_invalid_request(stack, flow, case):
    f = flow()
    f.consent()
    before = Snapshot(stack, f)
    answer = f.browser.get(callback_url(stack, CODE_CASES[case](f)))
    record_attack(CODE_ATTACKS[case], answer.status_code != 400 or stack.emulator.count("token") > 0)
    assert_page(answer, "invalid_request")
    assert "CCCCCCCC" not in answer.text and "ü" not in answer.text
    assert stack.emulator.count("token") == 0
    before.unchanged()


def test_extra_redirect_parameters_are_ignored(stack, flow):
    f = flow()
    f.consent()
    hostile = {"redirect": f"https://{EVIL}/", "next": f"https://{EVIL}/x", "redirect_uri": f"https://{EVIL}/"}
    answer = f.browser.get(f"{f.callback_url}&{urlencode(hostile)}")
    assert_result_redirect(stack, answer, "connected")
    page = f.browser.follow(answer)
    record_attack("open_redirect", any(EVIL in v for r in f.browser.history[-2:] for v in r.headers.values()))
    assert page.status_code == 200 and 'data-page="connected"' in page.text
    for response in f.browser.history[-2:]:
        assert all(EVIL not in v for v in response.headers.values())
        assert EVIL not in response.text
    assert f.advertiser()["status"] == "connected"
    assert stack.emulator.count("token") == 1


# --- GET /connect --------------------------------------------------------------------------------
def _connect_case(stack, flow, case: str) -> tuple[str, str, int]:
    if case == "unknown":
        return f"{stack.base_url}/connect/{fake()}", "invitation_unknown", 404
    if case == "hostile":
        return f"{stack.base_url}/connect/{quote(HOSTILE, safe='')}", "invitation_unknown", 404
    if case == "result_page":
        return f"{stack.base_url}/result/{quote(HOSTILE, safe='')}", "not_found", 404
    if case == "hostile_quote":
        path = quote('"><img src=x onerror=alert(1)>', safe="")
        return f"{stack.base_url}/connect/{path}", "invitation_unknown", 404
    if case == "expired":
        _, link = stack.invite()
        token = urlsplit(link).path.rsplit("/", 1)[-1]
        remember(token)
        table().update_item(
            Key={"pk": "INVITE#" + oauth.digest(token), "sk": "INVITE"},
            UpdateExpression="SET expires_at = :t",
            ExpressionAttributeValues={":t": Decimal(str(int(time.time()) - 1))},
        )
        return link, "invitation_expired", 410
    f = flow()  # "used"
    f.consent()
    assert_result_redirect(stack, f.callback(), "connected")
    return f.link, "invitation_used", 409


INVITATION_ATTACKS = {"unknown": "invitation:forged", "hostile": "xss:path", "hostile_quote": "xss:path",
                      "result_page": "xss:path", "expired": "invitation:expired", "used": "invitation:reused"}


@pytest.mark.parametrize("case", ["unknown", "hostile", "hostile_quote", "result_page", "expired", "used"])
def test_bad_invitation_gets_a_fixed_page_and_no_state(stack, flow, browser, case):
    url, key, status = _connect_case(stack, flow, case)
    states, tokens, stored = len(state_items()), stack.emulator.count("token"), secret_names()
    answer = browser().get(url)
    record_attack(INVITATION_ATTACKS[case], answer.status_code < 400 or "Set-Cookie" in answer.headers
                  or "onerror" in answer.text or "<script" in answer.text)
    assert_page(answer, key, status)
    assert "Set-Cookie" not in answer.headers
    assert "onerror" not in answer.text and "img" not in answer.text
    assert len(state_items()) == states, "a STATE item was created"
    assert stack.emulator.count("token") == tokens and secret_names() == stored


# --- POST /token ---------------------------------------------------------------------------------
def post_token(stack, body: str | bytes, *, signed: bool = True) -> requests.Response:
    url = f"{stack.base_url}/token"
    headers = {"Content-Type": "application/json"}
    if signed:
        headers = sign_request("POST", url, body, headers, credentials=OPERATOR_KEYS)
    return requests.post(url, data=body, headers=headers, allow_redirects=False, timeout=15)


def _with(**changes):
    return lambda good: json.dumps({**good, **changes})


TOKEN_CASES = {  # case -> (body from a good request, expected status)
    "not_json": (lambda g: f"code={g['code']}&region=XX", 400),
    "not_utf8": (lambda g: b"\xff\xfe{" + g["code"].encode(), 400),
    "json_array": (lambda g: json.dumps([g]), 400),
    "empty": (lambda g: "", 400),
    "truncated": (lambda g: json.dumps(g)[:-5], 400),
    "missing_code": (lambda g: json.dumps({k: v for k, v in g.items() if k != "code"}), 400),
    "code_int": (_with(code=12345678901234), 400),
    "null_code": (_with(code=None), 400),
    "region_list": (_with(region=["NA"]), 400),
    "region_lowercase": (_with(region="na"), 400),
    "unknown_region": (_with(region="XX"), 400),
    "extra_field": (_with(next=f"https://{EVIL}/"), 400),
    "http_redirect_uri": (_with(redirect_uri=f"http://{EVIL}/cb"), 400),
    "hostile_advertiser": (_with(advertiser=HOSTILE), 400),
    "oversized": (_with(code="C" * 20_000), 413),
    "unknown_advertiser": (_with(advertiser="adv-doesnotexist1"), 404),
}
TOKEN_ATTACKS = {"oversized": "oversized_input", "extra_field": "open_redirect",
                 "http_redirect_uri": "token:redirect_uri_downgrade", "hostile_advertiser": "xss:token_body",
                 "unknown_advertiser": "token:unknown_advertiser"}


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_malformed_token_request_is_refused(stack, case):
    advertiser_id, _ = stack.invite()
    good = {"code": fake(24), "redirect_uri": MANUAL_REDIRECT, "region": "NA", "advertiser": advertiser_id}
    stored = secret_names()
    make, status = TOKEN_CASES[case]
    answer = post_token(stack, make(good))
    record_attack(TOKEN_ATTACKS.get(case, "token:malformed_body"),
                  answer.status_code < 400 or answer.status_code >= 500 or stack.emulator.count("token") > 0)
    error = "advertiser_unknown" if status == 404 else "invalid_request"
    assert (answer.status_code, answer.json()["error"]) == (status, error), answer.text[:300]
    assert answer.headers["Content-Type"].startswith("application/json")
    for value in (good["code"], advertiser_id, "amazon.com", EVIL, "XX", "script", "CCCCCCCC", "12345678901234",
                  "doesnotexist"):
        assert value not in answer.text
    assert stack.emulator.count("token") == 0
    assert secret_names() == stored
    assert status_of(advertiser_id) == "invited"


def test_unsigned_and_badly_signed_token_requests_are_refused_by_the_gateway(stack):
    advertiser_id, _ = stack.invite()
    body = json.dumps({"code": fake(24), "redirect_uri": MANUAL_REDIRECT, "region": "NA", "advertiser": advertiser_id})
    unsigned = post_token(stack, body, signed=False).status_code
    record_attack("token:unsigned", unsigned != 403)
    assert unsigned == 403
    url, json_type = f"{stack.base_url}/token", {"Content-Type": "application/json"}
    headers = sign_request("POST", url, body, json_type, credentials=("AKIAOTHER00000000000", "wrong-key"))
    foreign = requests.post(url, data=body, headers=headers, timeout=15).status_code
    record_attack("token:foreign_signature", foreign != 403)
    assert foreign == 403
    tampered = sign_request("POST", url, body, json_type, credentials=OPERATOR_KEYS)
    other = body.replace(advertiser_id, "adv-000000000000")
    changed = requests.post(url, data=other, headers=tampered, timeout=15).status_code
    record_attack("token:tampered_body", changed != 403)
    assert changed == 403
    assert stack.emulator.count("token") == 0


@pytest.fixture
def manual_client(stack):
    stack.emulator.register_client(CLIENT_ID, stack.client_secret, [stack.callback_url, MANUAL_REDIRECT])
    yield
    stack.emulator.register_client(CLIENT_ID, stack.client_secret, [stack.callback_url])


def manual_code(stack, browser: Browser) -> str:
    """Consent as the advertiser does in the manual flow (no PKCE) and read the code off the URL bar."""
    query = urlencode({"client_id": CLIENT_ID, "scope": "advertising::campaign_management",
                       "response_type": "code", "redirect_uri": MANUAL_REDIRECT, "state": fake()})
    page = browser.get(f"{stack.emulator.base_url}/na/ap/oa?{query}")
    assert page.status_code == 200, page.text[:300]
    answer = browser.click(page, "allow")
    assert answer.status_code == 302 and answer.headers["Location"].startswith(MANUAL_REDIRECT)
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    remember(code)
    return code


def test_manual_exchange_connects_once_and_a_replay_gets_the_same_answer(stack, manual_client, browser):
    code = manual_code(stack, browser())
    advertiser_id, _ = stack.invite()
    body = json.dumps({"code": code, "redirect_uri": MANUAL_REDIRECT, "region": "NA", "advertiser": advertiser_id})
    first = post_token(stack, body)
    assert first.status_code == 200, first.text[:300]
    data = first.json()
    assert data["advertiser"]["id"] == advertiser_id and data["advertiser"]["status"] == "connected"
    assert {p["region"] for p in data["profiles"]} == {"NA", "EU", "FE"}
    for secret in ("Atza|", "Atzr|", code, stack.client_secret):
        assert secret not in first.text
    assert stack.emulator.count("token") == 1
    stored = secret_names()
    assert any(advertiser_id in name for name in stored)

    again = post_token(stack, body)
    assert again.status_code == 200 and again.json() == data
    assert stack.emulator.count("token") == 1, "the replay made a second exchange"
    assert secret_names() == stored


# --- stale or repeated input after the advertiser is connected ----------------------------------
def test_late_decline_from_a_second_tab_does_not_unset_connected(stack, browser):
    """Two tabs opened the same invitation; one connected, the other then declines."""
    advertiser_id, link = stack.invite()
    tab1, tab2 = browser(), browser()
    first, second = tab1.get(link), tab2.get(link)
    state2 = parse_qs(urlsplit(second.headers["Location"]).query)["state"][0]
    remember(state2)
    allowed = tab1.click(tab1.get(first.headers["Location"]), "allow")
    assert_result_redirect(stack, tab1.get(allowed.headers["Location"]), "connected")
    stored = secret_names()
    tab2.get(callback_url(stack, {"error": "access_denied", "state": state2}))
    record_attack("late_decline", status_of(advertiser_id) != "connected" or secret_names() != stored)
    assert secret_names() == stored and stack.emulator.count("token") == 1
    assert status_of(advertiser_id) == "connected"


def test_rejected_manual_code_does_not_unset_connected(stack, flow):
    f = flow()
    f.consent()
    assert_result_redirect(stack, f.callback(), "connected")
    body = {"code": fake(24), "redirect_uri": MANUAL_REDIRECT, "region": "NA", "advertiser": f.advertiser_id}
    answer = post_token(stack, json.dumps(body))
    record_attack("token:forged_code", answer.status_code == 200 or f.advertiser()["status"] != "connected")
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert f.advertiser()["status"] == "connected"


def test_token_replay_with_other_fields_is_not_answered_with_another_advertisers_result(stack, manual_client, browser):
    code = manual_code(stack, browser())
    first_id, _ = stack.invite()
    other_id, _ = stack.invite()
    body = {"code": code, "redirect_uri": MANUAL_REDIRECT, "region": "NA", "advertiser": first_id}
    assert post_token(stack, json.dumps(body)).status_code == 200
    again = post_token(stack, json.dumps({**body, "advertiser": other_id}))
    record_attack("code:replayed_for_other_advertiser",
                  again.status_code == 200 or first_id in again.text or status_of(other_id) != "invited")
    assert stack.emulator.count("token") == 1
    assert status_of(other_id) == "invited"
    assert (again.status_code, again.json()["error"]) == (409, "code_already_used")
    assert first_id not in again.text


# --- region mix-up (security requirement 3) --------------------------------------------------------
def test_code_from_another_regions_authorize_host_is_refused_for_an_eu_flow(stack, flow, browser):
    """An EU flow presented with a code the NA authorize host issued (same client, redirect_uri,
    state and PKCE challenge): the broker exchanges at the token endpoint paired with the state's
    region, EU, which refuses a code NA issued. No query parameter moves the exchange elsewhere."""
    f = flow("EU")
    assert urlsplit(f.authorize_url).path == "/eu/ap/oa"
    page = f.browser.get(f.authorize_url.replace("/eu/ap/oa", "/na/ap/oa", 1))
    consent = f.browser.click(page, "allow")
    na_code = parse_qs(urlsplit(consent.headers["Location"]).query)["code"][0]
    remember(na_code)
    stored = secret_names()
    na_token_url = f"{stack.emulator.base_url}/na/auth/o2/token"
    hostile = {"code": na_code, "scope": "advertising::campaign_management", "state": f.state, "region": "NA",
               "token_url": na_token_url, "token_endpoint": na_token_url, "lwa_region": "na"}
    answer = f.browser.get(callback_url(stack, hostile))
    calls = [(c["region"], c["status"]) for c in stack.emulator.calls if c["endpoint"] == "token"]
    record_attack("region_mixup", calls != [("EU", 400)] or f.advertiser()["status"] == "connected"
                  or secret_names() != stored)
    assert calls == [("EU", 400)], "the exchange did not go (only) to the state's region"
    assert_result_redirect(stack, answer, "retry")
    advertiser = f.advertiser()
    assert (advertiser["status"], advertiser["status_reason"]) == ("failed", "code_rejected")
    assert secret_names() == stored

    # the code itself was good: NA's own token endpoint redeems it (so only the pairing refused it)
    _, verifier = binding(f)
    redeemed = requests.post(na_token_url, data={
        "grant_type": "authorization_code", "code": na_code, "redirect_uri": stack.callback_url,
        "client_id": CLIENT_ID, "client_secret": stack.client_secret, "code_verifier": verifier,
    }, timeout=15)
    assert redeemed.status_code == 200, redeemed.text[:200]
    remember(*(v for v in redeemed.json().values() if isinstance(v, str)))


def test_no_request_input_chooses_the_authorize_or_token_endpoint(stack, browser):
    """The invitation's region picks the authorize host; parameters on the link do not."""
    advertiser_id, link = stack.invite(region="EU")
    b = browser()
    hostile = {"region": "NA", "authorize_url": f"https://{EVIL}/ap/oa", "redirect_uri": f"https://{EVIL}/cb"}
    answer = b.get(f"{link}?{urlencode(hostile)}")
    location = urlsplit(answer.headers.get("Location", ""))
    query = parse_qs(location.query)
    remember(*query.get("state", []))
    record_attack("region_choice", location.path != "/eu/ap/oa" or EVIL in answer.headers.get("Location", ""))
    assert answer.status_code == 302 and location.path == "/eu/ap/oa"
    assert query["redirect_uri"] == [stack.callback_url]
    assert EVIL not in answer.headers["Location"]


def test_a_manual_exchange_that_failed_can_be_retried_with_the_same_code(stack, manual_client, browser):
    code = manual_code(stack, browser())
    advertiser_id, _ = stack.invite()
    body = {"code": code, "redirect_uri": "https://www.amazon.com/wrong", "region": "NA", "advertiser": advertiser_id}
    first = post_token(stack, json.dumps(body))
    assert (first.status_code, first.json()["error"]) == (400, "invalid_grant")  # LwA refused: wrong redirect_uri
    fixed = post_token(stack, json.dumps({**body, "redirect_uri": MANUAL_REDIRECT}))
    assert fixed.status_code == 200 and fixed.json()["advertiser"]["status"] == "connected"
    assert stack.emulator.count("token") == 2
