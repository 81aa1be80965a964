"""The LwA / Ads API emulator, exercised over real HTTP with ``requests`` like the broker will use it."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from local.emulator import Emulator
from local.emulator_pages import parse_consent_form

CLIENT_ID = "amzn1.application-oa2-client.test"
CLIENT_SECRET = "s3cr3t-value"
CALLBACK = "https://broker.example/prod/callback"
SCOPE = "advertising::campaign_management"
REVOKED = "User may have revoked or didn't grant the permission"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def running(clock: FakeClock):
    with Emulator(clock=clock) as emulator:
        emulator.register_client(CLIENT_ID, CLIENT_SECRET, [CALLBACK, "https://other.example/cb?x=1"], name="Acme <Ads>")
        emulator.register_client("other-client", "other-secret", [CALLBACK])
        yield emulator


@pytest.fixture
def emu(running: Emulator, clock: FakeClock) -> Emulator:
    running.reset()
    clock.now = 1_700_000_000.0
    return running


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(challenge: str | None = None, **overrides) -> dict:
    params = {"client_id": CLIENT_ID, "scope": SCOPE, "response_type": "code", "redirect_uri": CALLBACK,
              "state": "state-123"}
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def consent(emu: Emulator, http: requests.Session, region: str = "na", decision: str = "allow", **params):
    """Open the authorize URL, read the consent form like a browser, submit it; return the redirect's query."""
    page = http.get(f"{emu.base_url}/{region}/ap/oa", params=params, allow_redirects=False)
    assert page.status_code == 200, page.text
    action, fields, buttons = parse_consent_form(page.text)
    name, value = buttons[decision]
    answer = http.post(f"{emu.base_url}{action}", data={**fields, name: value}, allow_redirects=False)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(params["redirect_uri"])
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(emu, http, region="na", challenge=None, **overrides) -> str:
    return consent(emu, http, region, **authorize_params(challenge, **overrides))["code"]


def token(emu, http, region="na", **form) -> requests.Response:
    body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
    return http.post(f"{emu.base_url}/{region}/auth/o2/token", data={k: v for k, v in body.items() if v is not None})


def exchange(emu, http, code, region="na", verifier=None, redirect_uri=CALLBACK, **extra) -> requests.Response:
    return token(emu, http, region, grant_type="authorization_code", code=code, redirect_uri=redirect_uri,
                 code_verifier=verifier, **extra)


def refresh(emu, http, refresh_token, region="na", **extra) -> requests.Response:
    return token(emu, http, region, grant_type="refresh_token", refresh_token=refresh_token, **extra)


def profiles(emu, http, access_token, region="na", client_id=CLIENT_ID, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"}
    if client_id is not None:
        headers["Amazon-Advertising-API-ClientId"] = client_id
    return http.get(f"{emu.base_url}/{region}/v2/profiles", headers=headers, params=params)


def tokens_for(emu, http, region="na") -> dict:
    verifier, challenge = pkce_pair()
    response = exchange(emu, http, get_code(emu, http, region, challenge), region, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def assert_oauth_error(response: requests.Response, status: int, error: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    return body


# ---- the happy path -------------------------------------------------------------------------------
def test_endpoints_env_names_every_regional_endpoint(emu):
    env = emu.endpoints_env()
    assert len(env) == 9
    for region in ("NA", "EU", "FE"):
        prefix = f"{emu.base_url}/{region.lower()}"
        assert env[f"LWA_AUTHORIZE_URL_{region}"] == f"{prefix}/ap/oa"
        assert env[f"LWA_TOKEN_URL_{region}"] == f"{prefix}/auth/o2/token"
        assert env[f"ADS_API_URL_{region}"] == prefix


@pytest.mark.parametrize("region, countries", [("na", ["US", "CA"]), ("eu", ["UK", "DE"]), ("fe", ["JP"])])
def test_authorize_consent_token_profiles(emu, http, region, countries):
    verifier, challenge = pkce_pair()
    page = http.get(f"{emu.base_url}/{region}/ap/oa", params=authorize_params(challenge))
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Acme &lt;Ads&gt;" in page.text and CLIENT_ID in page.text and SCOPE in page.text
    assert '<button type="submit" name="decision" value="allow" id="allow">Allow</button>' in page.text
    assert '<button type="submit" name="decision" value="deny" id="deny">Cancel</button>' in page.text
    assert f'action="/{region}/ap/oa/consent"' in page.text

    redirect = consent(emu, http, region, **authorize_params(challenge))
    assert set(redirect) == {"code", "scope", "state"}
    assert redirect["scope"] == SCOPE and redirect["state"] == "state-123"

    response = exchange(emu, http, redirect["code"], region, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["access_token"].startswith("Atza|") and body["refresh_token"].startswith("Atzr|")
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    info = emu.access_token_info(body["access_token"])
    assert info["user_id"] == "demo-user" and info["client_id"] == CLIENT_ID
    assert info["expires_at"] == emu.clock() + 3600

    listing = profiles(emu, http, body["access_token"], region)
    assert listing.status_code == 200
    assert listing.headers["Content-Type"] == "application/json"
    items = listing.json()
    assert [p["countryCode"] for p in items] == countries
    for item in items:
        assert isinstance(item["profileId"], int)
        assert {"marketplaceStringId", "id", "type", "name", "validPaymentMethod"} <= set(item["accountInfo"])


def test_tokens_from_one_region_list_profiles_in_every_region(emu, http):
    access = tokens_for(emu, http, "fe")["access_token"]
    countries = {r: [p["countryCode"] for p in profiles(emu, http, access, r).json()] for r in ("na", "eu", "fe")}
    assert countries == {"na": ["US", "CA"], "eu": ["UK", "DE"], "fe": ["JP"]}


def test_user_choice_and_empty_region(emu, http):
    emu.set_user("eu-only", {"EU": [{"profileId": 7, "countryCode": "FR", "currencyCode": "EUR", "timezone": "Europe/Paris",
                                     "accountInfo": {"marketplaceStringId": "A13V1IB3VIYZZH", "id": "A9", "type": "agency",
                                                     "name": "Agence", "validPaymentMethod": False}}]})
    redirect = consent(emu, http, "eu", **authorize_params(user="eu-only"))
    access = exchange(emu, http, redirect["code"], "eu").json()["access_token"]
    assert emu.access_token_info(access)["user_id"] == "eu-only"
    assert profiles(emu, http, access, "na").json() == []
    assert [p["profileId"] for p in profiles(emu, http, access, "eu").json()] == [7]


# ---- authorize and consent ------------------------------------------------------------------------
def test_deny_redirects_with_access_denied(emu, http):
    page = http.get(f"{emu.base_url}/na/ap/oa", params=authorize_params())
    action, fields, _ = parse_consent_form(page.text)
    answer = http.post(f"{emu.base_url}{action}", data={**fields, "decision": "deny"}, allow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["Location"] == (
        f"{CALLBACK}?error=access_denied&error_description=The+user+denied+the+request&state=state-123")


@pytest.mark.parametrize("overrides", [
    {"client_id": "unknown-client"},
    {"redirect_uri": CALLBACK + "/"},
    {"redirect_uri": CALLBACK.upper()},
    {"redirect_uri": "https://evil.example/callback"},
    {"redirect_uri": None},
])
def test_authorize_error_page_never_redirects(emu, http, overrides):
    response = http.get(f"{emu.base_url}/na/ap/oa", params=authorize_params(**overrides), allow_redirects=False)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Location" not in response.headers
    assert "evil.example" not in response.text


def test_consent_post_revalidates_client_and_redirect(emu, http):
    page = http.get(f"{emu.base_url}/na/ap/oa", params=authorize_params())
    action, fields, _ = parse_consent_form(page.text)
    forged = {**fields, "redirect_uri": "https://evil.example/cb", "decision": "allow"}
    response = http.post(f"{emu.base_url}{action}", data=forged, allow_redirects=False)
    assert response.status_code == 400 and "Location" not in response.headers


@pytest.mark.parametrize("overrides, error", [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "profile"}, "invalid_scope"),
    ({"scope": None}, "invalid_scope"),
    ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
    ({"code_challenge": "a" * 43, "code_challenge_method": "S512"}, "invalid_request"),
])
def test_authorize_errors_redirect_back_with_state(emu, http, overrides, error):
    response = http.get(f"{emu.base_url}/na/ap/oa", params=authorize_params(**overrides), allow_redirects=False)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == [error] and query["state"] == ["state-123"]


@pytest.mark.parametrize("scope", ["advertising::audiences", "cpc_advertising:campaign_management"])
def test_other_ads_scopes_are_accepted(emu, http, scope):
    assert consent(emu, http, **authorize_params(scope=scope))["scope"] == scope


def test_redirect_uri_with_query_gets_ampersand(emu, http):
    response_query = consent(emu, http, **authorize_params(redirect_uri="https://other.example/cb?x=1"))
    assert response_query["x"] == "1" and "code" in response_query


def test_consent_page_escapes_what_it_shows(emu, http):
    state = '"><script>alert(1)</script>'
    page = http.get(f"{emu.base_url}/na/ap/oa", params=authorize_params(state=state))
    assert "<script>" not in page.text
    assert parse_consent_form(page.text)[1]["state"] == state


# ---- authorization code grant ---------------------------------------------------------------------
def test_token_redirect_uri_must_match_exactly(emu, http):
    code = get_code(emu, http)
    body = assert_oauth_error(exchange(emu, http, code, redirect_uri=CALLBACK + "/"), 400, "invalid_grant")
    assert set(body) == {"error", "error_description"}
    # a missing parameter is a malformed request (RFC 6749 §5.2), not a wrong grant
    assert_oauth_error(exchange(emu, http, code, redirect_uri=None), 400, "invalid_request")
    assert exchange(emu, http, code).status_code == 200  # neither refusal used the code up


def test_pkce_mismatch_and_missing_verifier(emu, http):
    verifier, challenge = pkce_pair()
    code = get_code(emu, http, challenge=challenge)
    assert_oauth_error(exchange(emu, http, code, verifier=pkce_pair()[0]), 400, "invalid_grant")
    assert_oauth_error(exchange(emu, http, code, verifier=None), 400, "invalid_request")
    assert exchange(emu, http, code, verifier=verifier).status_code == 200


def test_pkce_method_defaults_to_plain(emu, http):
    verifier = secrets.token_urlsafe(48)
    code = get_code(emu, http, code_challenge=verifier)  # no code_challenge_method: LwA assumes plain
    assert_oauth_error(exchange(emu, http, code, verifier=pkce_pair()[0]), 400, "invalid_grant")
    assert exchange(emu, http, code, verifier=verifier).status_code == 200


def test_code_works_once_and_replay_revokes_the_grant(emu, http):
    code = get_code(emu, http)
    first = exchange(emu, http, code)
    assert first.status_code == 200
    assert_oauth_error(exchange(emu, http, code), 400, "invalid_grant")
    issued = first.json()
    assert profiles(emu, http, issued["access_token"]).status_code == 401
    assert assert_oauth_error(refresh(emu, http, issued["refresh_token"]), 400, "invalid_grant")["error_description"] == REVOKED


def test_concurrent_redemptions_of_one_code_yield_one_token(emu):
    code = get_code(emu, requests.Session())
    statuses = []

    def redeem():
        with requests.Session() as session:
            statuses.append(exchange(emu, session, code).status_code)

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [400] * 7


def test_code_expires_after_five_minutes(emu, http, clock):
    fresh, stale = get_code(emu, http), get_code(emu, http)
    clock.advance(299)
    assert exchange(emu, http, fresh).status_code == 200
    clock.advance(1)
    assert_oauth_error(exchange(emu, http, stale), 400, "invalid_grant")


@pytest.mark.parametrize("issuer, redeemer", [("na", "eu"), ("eu", "fe"), ("fe", "na")])
def test_code_is_redeemable_only_in_its_region(emu, http, issuer, redeemer):
    code = get_code(emu, http, issuer)
    assert_oauth_error(exchange(emu, http, code, redeemer), 400, "invalid_grant")
    assert exchange(emu, http, code, issuer).status_code == 200


def test_unknown_and_missing_code(emu, http):
    assert_oauth_error(exchange(emu, http, "not-a-code"), 400, "invalid_grant")
    assert_oauth_error(exchange(emu, http, None), 400, "invalid_request")


def test_grant_type_errors(emu, http):
    assert_oauth_error(token(emu, http, grant_type="password"), 400, "unsupported_grant_type")
    assert_oauth_error(token(emu, http), 400, "invalid_request")


def test_client_authentication(emu, http):
    code = get_code(emu, http)
    body = assert_oauth_error(exchange(emu, http, code, client_secret="wrong"), 401, "invalid_client")
    assert body == {"error": "invalid_client", "error_description": "Client authentication failed"}
    assert_oauth_error(exchange(emu, http, code, client_id="nobody"), 401, "invalid_client")
    assert_oauth_error(exchange(emu, http, code, client_secret=None), 401, "invalid_client")
    bad_basic = http.post(f"{emu.base_url}/na/auth/o2/token", auth=(CLIENT_ID, "wrong"),
                          data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK})
    assert_oauth_error(bad_basic, 401, "invalid_client")
    assert bad_basic.headers["WWW-Authenticate"].startswith("Basic")
    # the code survived the failed attempts; HTTP Basic is an accepted way to authenticate
    basic = http.post(f"{emu.base_url}/na/auth/o2/token", auth=(CLIENT_ID, CLIENT_SECRET),
                      data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK})
    assert basic.status_code == 200


def test_code_of_another_client_is_invalid_grant(emu, http):
    code = get_code(emu, http)
    response = exchange(emu, http, code, client_id="other-client", client_secret="other-secret")
    assert_oauth_error(response, 400, "invalid_grant")


# ---- refresh token grant --------------------------------------------------------------------------
def test_refresh_returns_new_access_token_and_same_refresh_token(emu, http, clock):
    issued = tokens_for(emu, http)
    clock.advance(3000)
    response = refresh(emu, http, issued["refresh_token"], "eu")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["refresh_token"] == issued["refresh_token"]
    assert body["access_token"] != issued["access_token"] and body["expires_in"] == 3600
    assert emu.access_token_info(body["access_token"])["expires_at"] == clock() + 3600
    assert profiles(emu, http, body["access_token"]).status_code == 200


def test_refresh_after_revocation_is_invalid_grant(emu, http):
    issued = tokens_for(emu, http)
    emu.revoke_grant("demo-user", CLIENT_ID)
    body = assert_oauth_error(refresh(emu, http, issued["refresh_token"]), 400, "invalid_grant")
    assert body["error_description"] == REVOKED
    assert profiles(emu, http, issued["access_token"]).status_code == 401


def test_rotation_invalidates_the_old_refresh_token(emu, http):
    emu.rotate_refresh_tokens = True
    old = tokens_for(emu, http)["refresh_token"]
    new = refresh(emu, http, old).json()["refresh_token"]
    assert new != old and new.startswith("Atzr|")
    assert_oauth_error(refresh(emu, http, old), 400, "invalid_grant")
    assert refresh(emu, http, new).status_code == 200


def test_refresh_errors(emu, http):
    issued = tokens_for(emu, http)
    assert_oauth_error(refresh(emu, http, "Atzr|unknown"), 400, "invalid_grant")
    assert_oauth_error(refresh(emu, http, None), 400, "invalid_request")
    other = refresh(emu, http, issued["refresh_token"], client_id="other-client", client_secret="other-secret")
    assert_oauth_error(other, 400, "invalid_grant")


def test_issue_refresh_token_helper_and_reset(emu, http):
    refresh_token = emu.issue_refresh_token(CLIENT_ID, region="EU")
    assert refresh(emu, http, refresh_token).status_code == 200
    emu.reset()
    assert_oauth_error(refresh(emu, http, refresh_token), 400, "invalid_grant")
    assert emu.calls[-1]["endpoint"] == "token" and len(emu.calls) == 1  # calls were forgotten too


# ---- profiles -------------------------------------------------------------------------------------
def test_profiles_rejects_bad_and_expired_tokens(emu, http, clock):
    access = tokens_for(emu, http)["access_token"]
    unauthorized = profiles(emu, http, "Atza|forged")
    assert unauthorized.status_code == 401
    assert unauthorized.json() == {"code": "UNAUTHORIZED", "details": "Not authorized to access this advertiser"}
    assert http.get(f"{emu.base_url}/na/v2/profiles", headers={"Amazon-Advertising-API-ClientId": CLIENT_ID}).status_code == 401
    assert profiles(emu, http, access, client_id=None).status_code == 400
    assert profiles(emu, http, access, client_id="other-client").status_code == 401
    clock.advance(3599)
    assert profiles(emu, http, access).status_code == 200
    clock.advance(1)
    assert profiles(emu, http, access).status_code == 401


def test_profile_type_filter(emu, http):
    access = tokens_for(emu, http)["access_token"]
    vendors = profiles(emu, http, access, "eu", profileTypeFilter="vendor").json()
    assert [p["countryCode"] for p in vendors] == ["DE"]
    both = profiles(emu, http, access, "eu", profileTypeFilter="seller,vendor").json()
    assert len(both) == 2
    assert profiles(emu, http, access, "na", profileTypeFilter="agency").json() == []
    assert profiles(emu, http, access, "na", profileTypeFilter="pirate").status_code == 400


# ---- robustness -----------------------------------------------------------------------------------
def test_unreadable_input_is_400_and_the_server_keeps_serving(emu, http):
    url = f"{emu.base_url}/na/auth/o2/token"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert_oauth_error(http.post(url, data=b"grant_type=\xff\xfe", headers=headers), 400, "invalid_request")
    assert_oauth_error(http.post(url, data="code=%ff%fe", headers=headers), 400, "invalid_request")
    assert_oauth_error(http.post(url, data=b"x" * (1024 * 1024), headers=headers), 400, "invalid_request")
    page = http.get(f"{emu.base_url}/na/ap/oa?client_id=%ff&redirect_uri=%c3%28")
    assert page.status_code == 400 and page.headers["Content-Type"].startswith("text/html")
    assert http.get(f"{emu.base_url}/na/v2/profiles?profileTypeFilter=%ff").status_code == 400
    assert http.get(f"{emu.base_url}/xx/v2/profiles").status_code == 404
    assert http.post(f"{emu.base_url}/na/v2/profiles").status_code == 405
    assert tokens_for(emu, http)["token_type"] == "bearer"


# ---- faults ---------------------------------------------------------------------------------------
def test_429_has_retry_after_and_is_regional(emu, http):
    access = tokens_for(emu, http)["access_token"]
    emu.fault("profiles", "429", region="EU", retry_after=7)
    throttled = profiles(emu, http, access, "eu")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert throttled.headers["Content-Type"] == "application/json" and "code" in throttled.json()
    assert profiles(emu, http, access, "na").status_code == 200
    emu.clear_faults()
    assert profiles(emu, http, access, "eu").status_code == 200


def test_5xx_fires_times_then_disappears(emu, http):
    issued = tokens_for(emu, http)
    emu.fault("token", "5xx", times=2)
    statuses = [refresh(emu, http, issued["refresh_token"]).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert emu.count("token", grant_type="refresh_token") == 3


def test_authorize_fault(emu, http):
    emu.fault("authorize", "5xx", region="FE", times=1)
    assert http.get(f"{emu.base_url}/fe/ap/oa", params=authorize_params()).status_code == 503
    assert http.get(f"{emu.base_url}/fe/ap/oa", params=authorize_params()).status_code == 200


def test_latency_stacks_with_other_faults(emu, http):
    access = tokens_for(emu, http)["access_token"]
    emu.fault("profiles", "latency", latency_ms=200, times=2)
    emu.fault("profiles", "429", times=1)
    started = time.monotonic()
    assert profiles(emu, http, access).status_code == 429
    assert profiles(emu, http, access).status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    assert profiles(emu, http, access).status_code == 200
    assert time.monotonic() - started < 0.2


def test_timeout_fault_makes_the_client_time_out(emu, http):
    emu.timeout_sleep_s = 0.5
    emu.fault("token", "timeout", times=1)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        http.post(f"{emu.base_url}/na/auth/o2/token", data={"grant_type": "refresh_token"}, timeout=0.1)
    assert time.monotonic() - started < 0.4
    deadline = time.monotonic() + 3
    while not any(c["status"] == 503 for c in emu.calls) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [c["status"] for c in emu.calls if c["endpoint"] == "token"][:1] == [503]


def test_stop_cuts_a_timeout_short(clock):
    emulator = Emulator(clock=clock).start()
    emulator.fault("profiles", "timeout")
    errors = []

    def call():
        try:
            requests.get(f"{emulator.base_url}/na/v2/profiles", timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.2)
    started = time.monotonic()
    emulator.stop()
    caller.join(timeout=5)
    assert time.monotonic() - started < 2 and not caller.is_alive()


def test_reset_fault_drops_the_connection(emu, http):
    access = tokens_for(emu, http)["access_token"]
    emu.fault("profiles", "reset", times=1)
    with pytest.raises(requests.ConnectionError):
        profiles(emu, http, access)
    assert profiles(emu, http, access).status_code == 200
    assert [c["status"] for c in emu.calls if c["endpoint"] == "profiles"] == [0, 200]


def test_fault_arguments_are_checked(emu):
    with pytest.raises(ValueError):
        emu.fault("consent", "5xx")
    with pytest.raises(ValueError):
        emu.fault("token", "teapot")
    with pytest.raises(ValueError):
        emu.fault("token", "5xx", region="APAC")
    with pytest.raises(ValueError):
        emu.fault("token", "refuse")  # which error?
    with pytest.raises(ValueError):
        emu.fault("profiles", "refuse", error="invalid_scope")  # not an OAuth endpoint
    with pytest.raises(ValueError):
        emu.fault("token", "5xx", error="invalid_scope")
    with pytest.raises(ValueError):
        emu.fault("token", "refuse", error="Not <a> code")


@pytest.mark.parametrize("error, status", [("unauthorized_client", 400), ("invalid_scope", 400),
                                           ("unsupported_grant_type", 400), ("invalid_request", 400),
                                           ("invalid_client", 401), ("some_new_error", 400)])
def test_refuse_fault_answers_the_oauth_error_and_spends_nothing(emu, http, error, status):
    code = get_code(emu, http)
    emu.fault("token", "refuse", error=error, times=1)
    body = assert_oauth_error(exchange(emu, http, code), status, error)
    assert set(body) == {"error", "error_description"}
    assert exchange(emu, http, code).status_code == 200  # the refused request did not use the code
    assert [c["status"] for c in emu.calls if c["endpoint"] == "token"] == [status, 200]


def test_late_fault_processes_the_request_and_answers_after_the_client_gave_up(emu, http):
    """"Processed, then answered too late": the code is used up and tokens issued, the client
    times out; presenting the code again is refused and revokes what it granted (RFC 6749 §4.1.2)."""
    emu.timeout_sleep_s = 1.0
    code = get_code(emu, http)
    emu.fault("token", "late", times=1)
    with pytest.raises(requests.Timeout):
        exchange_with_timeout = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                 "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
        http.post(f"{emu.base_url}/na/auth/o2/token", data=exchange_with_timeout, timeout=0.2)
    assert [c["status"] for c in emu.calls if c["endpoint"] == "token"] == [200]  # processed at once
    with emu._lock:
        issued = [t for t, (grant, _) in emu._access_tokens.items()]
        granted = [g for g in emu._grants.values()]
    assert len(issued) == 1 and len(granted) == 1 and not granted[0].revoked
    assert_oauth_error(exchange(emu, http, code), 400, "invalid_grant")  # the retry presents a used code
    assert granted[0].revoked  # and the late tokens are revoked with it
    assert emu.access_token_info(issued[0])["revoked"] is True


def test_late_fault_of_a_refresh_still_issues_a_token(emu, http):
    issued = tokens_for(emu, http)
    emu.timeout_sleep_s = 1.0
    emu.rotate_refresh_tokens = True
    emu.fault("token", "late", times=1)
    with pytest.raises(requests.Timeout):
        body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "refresh_token",
                "refresh_token": issued["refresh_token"]}
        http.post(f"{emu.base_url}/na/auth/o2/token", data=body, timeout=0.2)
    # rotated while the answer was on its way: the old refresh token is gone
    assert_oauth_error(refresh(emu, http, issued["refresh_token"]), 400, "invalid_grant")


# ---- accounting -----------------------------------------------------------------------------------
def test_calls_and_counts(emu, http, clock):
    issued = tokens_for(emu, http, "eu")
    refresh(emu, http, issued["refresh_token"], "na")
    refresh(emu, http, issued["refresh_token"], "na")
    profiles(emu, http, issued["access_token"], "fe")
    assert emu.count("authorize") == 1 and emu.count("authorize", "EU") == 1 and emu.count("authorize", "na") == 0
    assert emu.count("consent") == 1
    assert emu.count("token") == 3
    assert emu.count("token", grant_type="authorization_code") == 1
    assert emu.count("token", "NA", "refresh_token") == 2
    assert emu.count("profiles", "FE") == 1
    last = emu.calls[-1]
    assert last == {"endpoint": "profiles", "region": "FE", "grant_type": None, "status": 200, "time": clock()}
