"""HTTP retry policy, LwA and Ads API response handling, against a scripted transport."""

from __future__ import annotations

import json

import pytest
import urllib3

from adsauth.adapters.ads import AdsApiHttpClient
from adsauth.adapters.http import HttpClient, HttpResponse, HttpUnavailable, parse_retry_after
from adsauth.adapters.lwa import ClientCredentials, LwaHttpClient, parse_client_secret
from adsauth.errors import (
    AdsApiError,
    AdsApiUnauthorized,
    AdsApiUnavailable,
    ClientInvalid,
    ClientMisconfigured,
    GrantInvalid,
    LwaOAuthError,
    LwaUnavailable,
)
from adsauth.regions import PRODUCTION, Region


class Raw:
    def __init__(self, status, body=b"", headers=None):
        self.status, self.data, self.headers = status, body, headers or {}


class ScriptedPool:
    """Plays back responses or exceptions in order and records each request."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests = []

    def request(self, method, url, **kwargs):
        self.requests.append((method, url, kwargs))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def client(*script, attempts=3):
    sleeps: list[float] = []
    http = HttpClient(timeout_seconds=1, max_attempts=attempts, backoff_cap_seconds=2, sleep=sleeps.append)
    http.pool = ScriptedPool(*script)
    return http, sleeps


def test_retries_5xx_then_succeeds_with_capped_jittered_backoff():
    http, sleeps = client(Raw(503), Raw(502), Raw(200, b"{}"))
    assert http.request("GET", "https://x.example").status == 200
    assert len(sleeps) == 2 and all(0 <= s <= 2 for s in sleeps)


def test_429_honours_retry_after_within_the_cap():
    http, sleeps = client(Raw(429, headers={"Retry-After": "1.5"}), Raw(200))
    http.request("GET", "https://x.example")
    assert sleeps == [1.5]
    http, sleeps = client(Raw(429, headers={"Retry-After": "3600"}), Raw(200))
    http.request("GET", "https://x.example")
    assert sleeps == [2]  # never longer than the cap


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_never_retried(status):
    http, sleeps = client(Raw(status, b'{"error":"invalid_grant"}'))
    assert http.request("POST", "https://x.example", fields={"a": "b"}).status == status
    assert sleeps == [] and len(http.pool.requests) == 1


@pytest.mark.parametrize(
    "failure, reason",
    [
        (urllib3.exceptions.ReadTimeoutError(None, "u", "t"), "timeout"),
        (urllib3.exceptions.NewConnectionError(None, "refused"), "connection"),
        (urllib3.exceptions.ProtocolError("reset"), "connection"),
    ],
)
def test_transport_failures_are_retried_then_reported(failure, reason):
    http, sleeps = client(failure, failure, failure)
    with pytest.raises(HttpUnavailable) as caught:
        http.request("GET", "https://x.example")
    assert caught.value.reason == reason and len(sleeps) == 2


def test_requests_use_verified_tls_explicit_timeouts_and_no_hidden_retries():
    http = HttpClient(timeout_seconds=4, max_attempts=1, backoff_cap_seconds=1)
    assert http.pool.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"
    http.pool = ScriptedPool(Raw(200))
    http.request("GET", "https://x.example")
    kwargs = http.pool.requests[0][2]
    assert kwargs["timeout"].read_timeout == 4 and kwargs["redirect"] is False


@pytest.mark.parametrize("value, expected", [("2", 2.0), (" 0 ", 0.0), ("-1", None), ("Wed, 21 Oct 2015", None), (None, None)])
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


class FakeHttp:
    def __init__(self, response=None, error=None):
        self.response, self.error, self.calls = response, error, []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        if self.error:
            raise self.error
        return self.response


CREDS = ClientCredentials("amzn1.application-oa2-client.x", "s3cret-value")


def lwa(response=None, error=None):
    http = FakeHttp(response, error)
    return LwaHttpClient(http=http, endpoints=PRODUCTION, credentials=lambda: CREDS, clock=lambda: 1000.0), http


def test_exchange_posts_the_form_to_the_paired_token_url():
    body = json.dumps({"access_token": "Atza|a", "refresh_token": "Atzr|r", "token_type": "bearer", "expires_in": 3600})
    client_, http = lwa(HttpResponse(200, {}, body.encode()))
    tokens = client_.exchange_code(Region.FE, "the-code", "https://cb.example/callback", "v" * 43)
    method, url, kwargs = http.calls[0]
    assert (method, url) == ("POST", "https://api.amazon.co.jp/auth/o2/token")
    assert kwargs["fields"] == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://cb.example/callback",
        "code_verifier": "v" * 43,
        "client_id": CREDS.client_id,
        "client_secret": CREDS.client_secret,
    }
    assert tokens.expires_at == 4600.0
    assert "Atza" not in repr(tokens) and "Atzr" not in repr(tokens)


@pytest.mark.parametrize(
    "status, body, error",
    [
        (400, {"error": "invalid_grant", "error_description": "The request has an invalid grant parameter : code"}, GrantInvalid),
        (401, {"error": "invalid_client"}, ClientInvalid),
        (400, {"error": "unsupported_grant_type"}, LwaOAuthError),
        (400, {"error": "invalid_request"}, LwaOAuthError),
        (500, {"error": "server_error"}, LwaUnavailable),
        (200, {"access_token": "Atza|a"}, LwaUnavailable),  # incomplete success
        (200, ["not", "an", "object"], LwaUnavailable),
    ],
)
def test_token_errors_map_to_types(status, body, error):
    client_, _ = lwa(HttpResponse(status, {}, json.dumps(body).encode()))
    with pytest.raises(error) as caught:
        client_.exchange_code(Region.NA, "c", "https://cb.example", None)
    assert "description" not in str(caught.value) and "grant parameter" not in str(caught.value)


def test_unavailable_transport_becomes_lwa_unavailable():
    client_, _ = lwa(error=HttpUnavailable("timeout"))
    with pytest.raises(LwaUnavailable):
        client_.exchange_code(Region.NA, "c", "https://cb.example", None)


def test_unknown_oauth_error_codes_are_not_echoed():
    client_, _ = lwa(HttpResponse(400, {}, json.dumps({"error": "<script>x</script>"}).encode()))
    with pytest.raises(LwaOAuthError) as caught:
        client_.exchange_code(Region.NA, "c", "https://cb.example", None)
    assert caught.value.oauth_error == "unknown" and "<script>" not in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [None, "text", {}, {"client_id": "amzn1.application-oa2-client.x"}, {"client_id": "other", "client_secret": "s"},
     {"client_id": "amzn1.application-oa2-client.x", "client_secret": " "}],
)
def test_client_secret_must_be_complete_and_match_the_configured_client(value):
    with pytest.raises(ClientMisconfigured):
        parse_client_secret(value, "amzn1.application-oa2-client.x")


def ads(response=None, error=None):
    http = FakeHttp(response, error)
    return AdsApiHttpClient(http=http, endpoints=PRODUCTION, client_id="cid"), http


def test_profiles_request_uses_the_regional_host_and_headers():
    profile = {"profileId": 12, "countryCode": "DE", "currencyCode": "EUR", "timezone": "Europe/Paris",
               "accountInfo": {"marketplaceStringId": "A1PA", "id": "E1", "type": "vendor", "name": "GmbH"}}
    client_, http = ads(HttpResponse(200, {}, json.dumps([profile]).encode()))
    [parsed] = client_.list_profiles(Region.EU, "Atza|tok")
    method, url, kwargs = http.calls[0]
    assert url == "https://advertising-api-eu.amazon.com/v2/profiles"
    assert kwargs["headers"]["Authorization"] == "Bearer Atza|tok"
    assert kwargs["headers"]["Amazon-Advertising-API-ClientId"] == "cid"
    assert (parsed.profile_id, parsed.region, parsed.account_type) == (12, Region.EU, "vendor")


def test_empty_profile_list_is_normal():
    client_, _ = ads(HttpResponse(200, {}, b"[]"))
    assert client_.list_profiles(Region.FE, "t") == []


@pytest.mark.parametrize(
    "response, error",
    [
        (HttpResponse(401, {}, b"{}"), AdsApiUnauthorized),
        (HttpResponse(403, {}, b"{}"), AdsApiError),
        (HttpResponse(200, {}, b"{not json"), AdsApiError),
        (HttpResponse(200, {}, b'{"profiles": []}'), AdsApiError),
        (HttpResponse(200, {}, b'[{"profileId": "12"}]'), AdsApiError),
    ],
)
def test_profile_errors(response, error):
    client_, _ = ads(response)
    with pytest.raises(error):
        client_.list_profiles(Region.NA, "t")


def test_profiles_unavailable():
    client_, _ = ads(error=HttpUnavailable("status_503", 503))
    with pytest.raises(AdsApiUnavailable):
        client_.list_profiles(Region.NA, "t")
