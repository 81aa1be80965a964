"""The downstream client against moto in-process, with a clock the tests move."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal

import boto3
import pytest
import urllib3
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from adsauth import client, schema
from adsauth.adapters.http import HttpClient
from adsauth.client import (
    AccessToken,
    AdsApiRejected,
    AdsApiSession,
    AdsApiUnreachable,
    AdsAuthClientError,
    AdvertiserNotFound,
    ClientConfigurationError,
    NeedsReauthorization,
    TokenUnavailable,
    clear_cache,
    get_access_token,
    get_token_info,
)
from tests.conftest import remember

TABLE = "adsauth-client-test"  # tests/iam/simulate.py maps it (and PREFIX) to the deployed names
REGION = "eu-west-3"  # not the integration stack's region
PREFIX = "test/advertisers/"
CLIENT_ID = "amzn1.application-oa2-client.unittest"
HOSTS = {"NA": "https://ads-na.test", "EU": "https://ads-eu.test", "FE": "https://ads-fe.test"}
T0 = 1_700_000_000.0
FALLBACKS = ("TABLE_NAME", "SECRET_PREFIX", "LWA_CLIENT_ID", "MIN_REMAINING_MINUTES")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def aws(monkeypatch):
    # the integration stack may have pointed boto3 at its moto server: this module mocks in-process
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.setenv(name, REGION)
    for name in FALLBACKS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"ADSAUTH_{name}", raising=False)
    monkeypatch.setenv("ADSAUTH_TABLE_NAME", TABLE)
    monkeypatch.setenv("ADSAUTH_SECRET_PREFIX", PREFIX)
    monkeypatch.setenv("ADSAUTH_LWA_CLIENT_ID", CLIENT_ID)
    for region, host in HOSTS.items():
        monkeypatch.setenv(f"ADS_API_URL_{region}", host)
    clear_cache()
    parameters.clear_caches()
    # The integration stack's moto server shares moto's in-process backends: a reset would wipe
    # it. So nothing is reset; this module works in its own region and removes what it made.
    mock = mock_aws()
    mock.start(reset=False)
    dynamodb, sm = boto3.client("dynamodb"), boto3.client("secretsmanager")
    try:
        dynamodb.create_table(**schema.create_table_request(TABLE))
        yield
    finally:
        dynamodb.delete_table(TableName=TABLE)
        for page in sm.get_paginator("list_secrets").paginate():
            for secret in page["SecretList"]:
                sm.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
        mock.stop(remove_data=False)
        clear_cache()
        parameters.clear_caches()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(client, "_clock", c)
    return c


@pytest.fixture
def reads():
    """How many GetSecretValue calls the client made."""
    count = {"n": 0}

    def hook(**_):
        count["n"] += 1

    client._secrets().meta.events.register("before-call.secrets-manager.GetSecretValue", hook)
    return count


def put_token(advertiser_id: str, expires_at: float) -> str:
    """An access-token secret, and a connected advertiser unless the test made it already (a
    token is served only for a connected advertiser, or a needs_reauth one while it lasts)."""
    token = "Atza|" + secrets.token_urlsafe(48)
    remember(token)
    if "Item" not in boto3.resource("dynamodb").Table(TABLE).get_item(Key=schema.advertiser_key(advertiser_id)):
        put_advertiser(advertiser_id)
    sm = boto3.client("secretsmanager")
    value = json.dumps({"access_token": token, "expires_at": expires_at})
    name = f"{PREFIX}access/{advertiser_id}"
    try:
        sm.put_secret_value(SecretId=name, SecretString=value)
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=name, SecretString=value)
    return token


def put_advertiser(advertiser_id: str, status: str = "connected") -> None:
    boto3.resource("dynamodb").Table(TABLE).put_item(Item={
        **schema.advertiser_key(advertiser_id), "type": "advertiser", "advertiser_id": advertiser_id,
        "name": "Acme", "email": "ads@acme.example", "region": "NA", "status": status,
        "created_at": Decimal(1), "updated_at": Decimal(1),
    })


def put_profile(advertiser_id: str, profile_id: int, region: str = "NA", seen_at: float = T0) -> None:
    boto3.resource("dynamodb").Table(TABLE).put_item(Item={
        **schema.profile_key(advertiser_id, region, profile_id), "type": "profile",
        schema.PROFILE_INDEX_PK: f"PROFILE#{profile_id}", "advertiser_id": advertiser_id,
        "profile_id": profile_id, "region": region, "status": "active", "seen_at": Decimal(str(seen_at)),
    })


# --- caching -------------------------------------------------------------------------------------
def test_cache_hit_makes_no_secrets_manager_call(clock, reads):
    token = put_token("adv-1", T0 + 3600)
    assert get_access_token(advertiser_id="adv-1") == token
    clock.now += 299
    assert get_access_token(advertiser_id="adv-1") == token
    assert reads["n"] == 1


def test_cached_token_is_reread_after_five_minutes(clock, reads):
    put_token("adv-1", T0 + 3600)
    get_access_token(advertiser_id="adv-1")
    renewed = put_token("adv-1", T0 + 3900)
    clock.now += 301
    assert get_access_token(advertiser_id="adv-1") == renewed
    assert reads["n"] == 2


def test_cache_never_returns_a_token_under_the_minimum(clock, reads):
    token = put_token("adv-1", T0 + 12 * 60)  # 12 minutes left: cacheable for 2 minutes at most
    assert get_access_token(advertiser_id="adv-1") == token
    clock.now += 119  # 10 min 1 s left
    assert get_access_token(advertiser_id="adv-1") == token
    assert reads["n"] == 1
    put_advertiser("adv-1")
    clock.now += 2  # 9 min 59 s left: the cached token no longer qualifies and neither does the stored one
    with pytest.raises(TokenUnavailable):
        get_access_token(advertiser_id="adv-1")
    assert reads["n"] == 2


def test_forced_refetch_when_the_cached_token_is_too_old_for_the_caller(clock, reads):
    put_token("adv-1", T0 + 12 * 60)
    get_access_token(advertiser_id="adv-1", min_remaining_minutes=0)  # cached for the full 5 minutes
    clock.now += 180  # 9 minutes left: fine for a 0-minute caller, not for a 10-minute one
    renewed = put_token("adv-1", clock.now + 3600)
    info = get_token_info(advertiser_id="adv-1", min_remaining_minutes=10)
    assert info.value == renewed and info.expires_at == clock.now + 3600 and info.advertiser_id == "adv-1"
    assert reads["n"] == 2


def test_a_token_without_the_promised_time_is_never_cached(clock, reads):
    put_advertiser("adv-1")
    token = put_token("adv-1", T0 + 5 * 60)
    for expected_reads in (1, 2):
        with pytest.raises(TokenUnavailable):
            get_access_token(advertiser_id="adv-1")
        assert reads["n"] == expected_reads
    assert get_access_token(advertiser_id="adv-1", min_remaining_minutes=1) == token
    assert get_access_token(advertiser_id="adv-1", min_remaining_minutes=1) == token
    assert reads["n"] == 3


def test_clear_cache_forgets_tokens(clock, reads):
    put_token("adv-1", T0 + 3600)
    get_access_token(advertiser_id="adv-1")
    clear_cache()
    assert not client._tokens
    again = {"n": 0}
    client._secrets().meta.events.register(
        "before-call.secrets-manager.GetSecretValue", lambda **_: again.update(n=again["n"] + 1)
    )
    get_access_token(advertiser_id="adv-1")
    assert reads["n"] == 1 and again["n"] == 1


# --- diagnosis -----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["needs_reauth", "revoked"])
def test_stale_token_of_an_advertiser_who_must_reauthorize(clock, status):
    put_advertiser("adv-1", status)
    token = put_token("adv-1", T0 - 60)
    with pytest.raises(NeedsReauthorization) as raised:
        get_access_token(advertiser_id="adv-1")
    assert raised.value.advertiser_id == "adv-1" and "adv-1" in str(raised.value)
    assert token not in str(raised.value) and token not in repr(raised.value)


@pytest.mark.parametrize("status", ["connected", None])
def test_stale_token_otherwise_means_the_refresher_is_late(clock, status):
    if status:
        put_advertiser("adv-1", status)
    put_token("adv-1", T0 + 60)
    with pytest.raises(TokenUnavailable, match="adv-1.*refresher has not renewed"):
        get_access_token(advertiser_id="adv-1")


def test_unknown_advertiser_and_unknown_profile(clock):
    with pytest.raises(AdvertiserNotFound, match="advertiser adv-unknown"):
        get_access_token(advertiser_id="adv-unknown")
    put_advertiser("adv-invited", "invited")  # invited but never connected: no secret yet
    with pytest.raises(AdvertiserNotFound):
        get_access_token(advertiser_id="adv-invited")
    with pytest.raises(AdvertiserNotFound, match="profile 999") as raised:
        get_access_token(profile_id=999)
    assert raised.value.profile_id == 999 and raised.value.advertiser_id is None


def test_no_secret_but_revoked_advertiser_needs_reauthorization(clock):
    put_advertiser("adv-1", "revoked")
    with pytest.raises(NeedsReauthorization):
        get_access_token(advertiser_id="adv-1")


def test_malformed_secret_is_unavailable_without_quoting_it(clock):
    boto3.client("secretsmanager").create_secret(Name=f"{PREFIX}access/adv-1", SecretString='{"access_token": "Atza|leak-me-not"}')
    remember("Atza|leak-me-not")
    with pytest.raises(TokenUnavailable) as raised:
        get_access_token(advertiser_id="adv-1")
    assert "leak-me-not" not in str(raised.value) and raised.value.__cause__ is None


# --- profiles ------------------------------------------------------------------------------------
def test_profile_id_resolves_to_its_advertiser_and_is_cached(clock):
    put_profile("adv-old", 1234567890, seen_at=T0 - 100)
    put_profile("adv-1", 1234567890, seen_at=T0)  # the grant that saw it last wins
    token = put_token("adv-1", T0 + 3600)
    queries = {"n": 0}
    client._store().client.meta.events.register("before-call.dynamodb.Query", lambda **_: queries.update(n=queries["n"] + 1))
    assert get_access_token(profile_id=1234567890) == token
    assert get_token_info(profile_id=1234567890).advertiser_id == "adv-1"
    assert queries["n"] == 1


def test_a_profile_that_moved_to_a_new_grant_is_looked_up_again(clock):
    put_advertiser("adv-old", "needs_reauth")
    put_profile("adv-old", 55, seen_at=T0 - 100)
    put_token("adv-old", T0 - 60)
    with pytest.raises(NeedsReauthorization) as raised:
        get_access_token(profile_id=55)
    assert raised.value.advertiser_id == "adv-old"
    put_profile("adv-new", 55, seen_at=T0)  # the seller authorized again, as a new advertiser
    token = put_token("adv-new", T0 + 3600)
    assert get_access_token(profile_id=55) == token


def test_exactly_one_of_advertiser_and_profile():
    with pytest.raises(TypeError):
        get_access_token()
    with pytest.raises(TypeError):
        get_access_token(advertiser_id="adv-1", profile_id=1)


# --- configuration -------------------------------------------------------------------------------
def test_missing_variable_is_named(monkeypatch):
    monkeypatch.delenv("ADSAUTH_TABLE_NAME")
    clear_cache()
    with pytest.raises(ClientConfigurationError, match="ADSAUTH_TABLE_NAME \\(or TABLE_NAME\\) is required"):
        get_access_token(advertiser_id="adv-1")


def test_unprefixed_fallbacks_are_read(monkeypatch, clock):
    for name in ("TABLE_NAME", "SECRET_PREFIX", "LWA_CLIENT_ID"):
        monkeypatch.delenv(f"ADSAUTH_{name}")
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("SECRET_PREFIX", PREFIX)
    monkeypatch.setenv("ADSAUTH_MIN_REMAINING_MINUTES", "20")
    clear_cache()
    put_token("adv-1", T0 + 15 * 60)
    with pytest.raises(TokenUnavailable):  # 15 minutes left < the configured 20
        get_access_token(advertiser_id="adv-1")
    with pytest.raises(ClientConfigurationError, match="ADSAUTH_LWA_CLIENT_ID \\(or LWA_CLIENT_ID\\)"):
        AdsApiSession(1, region="NA")


@pytest.mark.parametrize("value", ["ten", "-1", "60"])
def test_bad_minimum_is_refused(monkeypatch, value):
    monkeypatch.setenv("ADSAUTH_MIN_REMAINING_MINUTES", value)
    clear_cache()
    with pytest.raises(ClientConfigurationError, match="ADSAUTH_MIN_REMAINING_MINUTES"):
        get_access_token(advertiser_id="adv-1")


# --- no token in any text ------------------------------------------------------------------------
def test_reprs_and_messages_never_show_a_token(clock):
    token = put_token("adv-1", T0 + 3600)
    info = get_token_info(advertiser_id="adv-1")
    assert token not in repr(info) and token not in str(info) and "adv-1" in repr(info)
    session = AdsApiSession(42, region="EU")
    assert token not in repr(session) and repr(session) == "AdsApiSession(profile_id=42, region=EU)"
    errors = [AdvertiserNotFound(advertiser_id="adv-1"), NeedsReauthorization("adv-1"), TokenUnavailable("adv-1"),
              AdsApiRejected("adv-1", 42, status=401), AdsApiUnreachable(profile_id=42, reason="timeout"),
              ClientConfigurationError("environment variable ADSAUTH_TABLE_NAME (or TABLE_NAME) is required")]
    for error in errors:
        assert isinstance(error, AdsAuthClientError) and token not in str(error) and token not in repr(error)
    assert str(errors[3]) == "the Ads API rejected the request for profile 42 (HTTP 401)" and errors[3].status == 401
    assert str(AdvertiserNotFound(profile_id=7)) == "profile 7 belongs to no known advertiser"


# --- Ads API session -----------------------------------------------------------------------------
class Raw:
    def __init__(self, status, body=b"", headers=None):
        self.status, self.data, self.headers = status, body, headers or {}


class ScriptedPool:
    def __init__(self, *script):
        self.script = list(script)
        self.requests = []

    def request(self, method, url, **kwargs):
        self.requests.append((method, url, kwargs))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def scripted(*script) -> tuple[HttpClient, list[float]]:
    sleeps: list[float] = []
    http = HttpClient(timeout_seconds=1, max_attempts=3, backoff_cap_seconds=2, sleep=sleeps.append)
    http.pool = ScriptedPool(*script)
    return http, sleeps


def test_session_sends_token_client_id_and_scope_to_the_profiles_regional_host(clock):
    put_profile("adv-1", 77, region="EU")
    token = put_token("adv-1", T0 + 3600)
    http, _ = scripted(Raw(200, b'{"campaigns": []}'))
    response = AdsApiSession(77, http=http).request("POST", "/sp/campaigns/list", json={"maxResults": 10},
                                                    params={"a": "b"})
    assert response.status == 200 and response.json() == {"campaigns": []}
    method, url, kwargs = http.pool.requests[0]
    assert (method, url) == ("POST", "https://ads-eu.test/sp/campaigns/list?a=b")
    assert kwargs["headers"]["Authorization"] == f"Bearer {token}"
    assert kwargs["headers"]["Amazon-Advertising-API-ClientId"] == CLIENT_ID
    assert kwargs["headers"]["Amazon-Advertising-API-Scope"] == "77"
    assert json.loads(kwargs["body"]) == {"maxResults": 10}


def test_list_profiles_omits_the_scope_header(clock):
    put_profile("adv-1", 77)
    put_token("adv-1", T0 + 3600)
    http, _ = scripted(Raw(200, b'[{"profileId": 77}]'))
    assert AdsApiSession(77, region="fe", http=http).list_profiles() == [{"profileId": 77}]
    _, url, kwargs = http.pool.requests[0]
    assert url == "https://ads-fe.test/v2/profiles" and "Amazon-Advertising-API-Scope" not in kwargs["headers"]


def test_429_is_retried_after_retry_after(clock):
    put_profile("adv-1", 77)
    put_token("adv-1", T0 + 3600)
    http, sleeps = scripted(Raw(429, headers={"Retry-After": "1.5"}), Raw(200, b"[]"))
    assert AdsApiSession(77, http=http).list_profiles() == []
    assert sleeps == [1.5]


def test_a_create_is_not_resent_after_a_5xx_or_timeout(clock):
    put_profile("adv-1", 77)
    put_token("adv-1", T0 + 3600)
    http, _ = scripted(Raw(503))
    assert AdsApiSession(77, http=http).request("POST", "/sp/campaigns", json=[{}]).status == 503
    http, _ = scripted(urllib3.exceptions.ReadTimeoutError(None, "/", "timed out"))
    with pytest.raises(AdsApiUnreachable, match="timeout"):
        AdsApiSession(77, http=http).request("POST", "/sp/campaigns", json=[{}])
    http, _ = scripted(Raw(503), Raw(503), Raw(503))
    with pytest.raises(AdsApiUnreachable, match="status_503"):
        AdsApiSession(77, http=http).request("GET", "/sp/campaigns")


def test_401_rereads_the_token_once_then_succeeds(clock, reads):
    put_profile("adv-1", 77)
    put_token("adv-1", T0 + 3600)
    get_access_token(profile_id=77)
    renewed = put_token("adv-1", T0 + 3700)
    http, _ = scripted(Raw(401), Raw(200, b"[]"))
    assert AdsApiSession(77, http=http).list_profiles() == []
    assert http.pool.requests[1][2]["headers"]["Authorization"] == f"Bearer {renewed}"
    assert reads["n"] == 2


@pytest.mark.parametrize("status, error", [("connected", AdsApiRejected), ("needs_reauth", NeedsReauthorization)])
def test_second_401_is_a_typed_error(clock, status, error):
    put_advertiser("adv-1", status)
    put_profile("adv-1", 77)
    token = put_token("adv-1", T0 + 3600)
    http, _ = scripted(Raw(401), Raw(401))
    with pytest.raises(error) as raised:
        AdsApiSession(77, http=http).request("GET", "/v2/profiles/77")
    assert raised.value.profile_id == 77 and token not in str(raised.value)


def test_session_refuses_absolute_urls(clock):
    put_profile("adv-1", 77)
    put_token("adv-1", T0 + 3600)
    http, _ = scripted()
    for path in ("https://evil.example/x", "//evil.example/x"):
        with pytest.raises(ValueError):
            AdsApiSession(77, http=http).request("GET", path)
    assert http.pool.requests == []


def test_access_token_dataclass_is_frozen():
    token = AccessToken("Atza|x" * 4, T0, "adv-1")
    with pytest.raises(AttributeError):
        token.value = "other"  # type: ignore[misc]


@pytest.mark.parametrize("status, error", [("revoked", NeedsReauthorization), ("invited", AdvertiserNotFound),
                                           ("cancelled", AdvertiserNotFound), ("failed", AdvertiserNotFound)])
def test_a_token_left_by_a_lost_race_is_never_served(clock, status, error):
    """A secret of an advertiser that is not connected (a completion that lost against a revoke
    or a cancel, being taken back) is not served, however much time it has left."""
    put_advertiser("adv-left", status)
    put_token("adv-left", T0 + 3000)
    with pytest.raises(error):
        get_access_token(advertiser_id="adv-left")


def test_a_needs_reauth_advertisers_last_token_serves_while_it_lasts(clock):
    put_advertiser("adv-last", "needs_reauth")
    token = put_token("adv-last", T0 + 3000)
    assert get_access_token(advertiser_id="adv-last") == token
    clock.now = T0 + 2990
    clear_cache()
    with pytest.raises(NeedsReauthorization):
        get_access_token(advertiser_id="adv-last")
