"""python-amazon-ad-api on adsauth tokens (``adsauth.ad_api``), through the library's own client
against the local stack: a real authorization stores the tokens, the emulator checks what the Ads
API checks (bearer token it issued and still honours, client id, scope = one of the user's profiles
in that region), and no refresh token or client secret ever reaches the consumer.

``ad_api`` is imported inside the tests: at import it calls ``logging.basicConfig``, which must
not configure the root logger of the whole run at collection time."""

from __future__ import annotations

import os

import boto3
import pytest

from adsauth import client, schema, wiring
from adsauth.ad_api import NOT_HELD, TESTED_VERSION, AdsApiHost, ad_api_kwargs, call_ad_api
from adsauth.regions import PRODUCTION
from adsauth.client import (
    AdsApiRejected,
    AdsApiUnreachable,
    AdvertiserNotFound,
    ClientConfigurationError,
    NeedsReauthorization,
    clear_cache,
    get_access_token,
)
from local.emulator import DEFAULT_PROFILES, DEFAULT_USER, Emulator
from local.stack import CLIENT_ID, TABLE_NAME, free_port
from tests.conftest import remember
from tests.integration.test_client import connected  # noqa: F401 (a fixture: a connected advertiser)

PROFILE = {region: DEFAULT_PROFILES[region][0] for region in ("NA", "EU", "FE")}
NA_PROFILE = PROFILE["NA"]["profileId"]




@pytest.fixture
def environ(monkeypatch):
    """Change the consumer's environment for one test; adsauth.client reads it again."""
    yield monkeypatch
    monkeypatch.undo()
    clear_cache()


def list_enabled_campaigns(kwargs: dict):
    from ad_api.api import sponsored_products

    return sponsored_products.CampaignsV3(**kwargs).list_campaigns(body={"stateFilter": {"include": ["ENABLED"]}})


def test_the_pinned_library_is_the_tested_one():
    import ad_api.version

    assert ad_api.version.__version__ == TESTED_VERSION


@pytest.mark.parametrize("region", ["NA", "EU", "FE"])
def test_profiles_and_campaigns_through_the_library(stack, connected, region):
    from ad_api.api import Profiles

    profile = PROFILE[region]
    before = {e: stack.emulator.count(e, region) for e in ("profiles", "campaigns", "token")}

    listed = Profiles(**ad_api_kwargs(profile["profileId"])).list_profiles().payload
    campaigns = call_ad_api(profile["profileId"], list_enabled_campaigns).payload

    assert [p["profileId"] for p in listed] == [p["profileId"] for p in DEFAULT_PROFILES[region]]
    assert campaigns["campaigns"] == [c for c in Emulator.campaigns_of(profile) if c["state"] == "ENABLED"]
    # each went to the profile's regional host, once; the library never asked LwA for a token
    after = {e: stack.emulator.count(e, region) for e in ("profiles", "campaigns", "token")}
    assert after == {"profiles": before["profiles"] + 1, "campaigns": before["campaigns"] + 1,
                     "token": before["token"]}


def test_the_emulator_checks_the_scope_like_the_ads_api(stack, connected):
    from ad_api.api import sponsored_products
    from ad_api.base.exceptions import AdvertisingApiBadRequestException, AdvertisingApiUnauthorizedException

    kwargs = ad_api_kwargs(NA_PROFILE)
    other_region = {**kwargs, "credentials": {**kwargs["credentials"], "profile_id": str(PROFILE["EU"]["profileId"])}}
    with pytest.raises(AdvertisingApiUnauthorizedException) as refused:
        sponsored_products.CampaignsV3(**other_region).list_campaigns()
    assert refused.value.code == 401
    unscoped = {**kwargs, "credentials": {k: v for k, v in kwargs["credentials"].items() if k != "profile_id"}}
    with pytest.raises(AdvertisingApiBadRequestException) as refused:
        sponsored_products.CampaignsV3(**unscoped).list_campaigns()
    assert "Scope" in refused.value.message
    # and the scoped call with the same token works
    assert sponsored_products.CampaignsV3(**kwargs).list_campaigns().payload["totalResults"] == 2


@pytest.mark.parametrize("region", ["NA", "EU", "FE"])
def test_the_marketplace_is_the_profiles_region(stack, connected, environ, region):
    from ad_api.base import Marketplaces

    overridden = ad_api_kwargs(PROFILE[region]["profileId"])["marketplace"]
    assert overridden == AdsApiHost(client.Region(region), f"{stack.emulator.base_url}/{region.lower()}")

    environ.delenv(f"ADS_API_URL_{region}")  # as deployed: the production host
    clear_cache()
    production = ad_api_kwargs(PROFILE[region]["profileId"])["marketplace"]
    assert production is Marketplaces[{"NA": "NA", "EU": "EU", "FE": "JP"}[region]]
    assert production.endpoint == PRODUCTION[client.Region(region)].ads_api_url


def test_no_refresh_token_or_client_secret_reaches_the_consumer(stack, connected):
    from ad_api.api import Profiles

    kwargs = ad_api_kwargs(NA_PROFILE)
    api = Profiles(**kwargs)
    api.list_profiles()
    with stack.emulator._lock:
        refresh_tokens = set(stack.emulator._refresh_tokens)
    secrets = refresh_tokens | {stack.client_secret}
    assert refresh_tokens and secrets.isdisjoint(strings_in(kwargs))
    assert secrets.isdisjoint(strings_in(api)), "the library's client holds a secret"
    assert not any(secret in value for secret in secrets for value in os.environ.values())
    # what the library insisted on is a placeholder, and what it sends is the adsauth token
    assert api.credentials["refresh_token"] == api.credentials["client_secret"] == NOT_HELD
    assert api.headers["Authorization"] == f"Bearer {get_access_token(profile_id=NA_PROFILE)}"
    assert api.headers["Amazon-Advertising-API-ClientId"] == CLIENT_ID
    assert api.headers["Amazon-Advertising-API-Scope"] == str(NA_PROFILE)
    with pytest.raises(TypeError):  # its debug mode logs the bearer token: the kwargs pin it off
        Profiles(**kwargs, debug=True)


def test_the_librarys_environment_credentials_are_refused(stack, connected, environ):
    from ad_api.api import Profiles

    kwargs = ad_api_kwargs(NA_PROFILE)
    stray = {"AD_API_CLIENT_ID": "stray-client", "AD_API_CLIENT_SECRET": "stray-secret-value",
             "AD_API_REFRESH_TOKEN": "Atzr|stray-refresh-value"}
    for name, value in stray.items():
        environ.setenv(name, value)
    # why: given all three, the library drops the credentials it is passed for these
    assert Profiles(**kwargs).credentials["refresh_token"] == stray["AD_API_REFRESH_TOKEN"]

    before = stack.emulator.count("profiles")
    for name in ("AD_API_REFRESH_TOKEN", "AD_API_CLIENT_SECRET"):
        with pytest.raises(ClientConfigurationError) as refused:
            call_ad_api(NA_PROFILE, lambda kw: Profiles(**kw).list_profiles())
        assert name in str(refused.value) and "stray" not in str(refused.value)
        environ.delenv(name)
    assert stack.emulator.count("profiles") == before  # nothing was sent
    assert Profiles(**ad_api_kwargs(NA_PROFILE)).credentials == ad_api_kwargs(NA_PROFILE)["credentials"]


def test_stray_lwa_variables_and_a_credentials_file_change_nothing(stack, connected, environ, tmp_path):
    from ad_api.api import Profiles

    expected = ad_api_kwargs(NA_PROFILE)
    config = tmp_path / ".config" / "python-ad-api"
    config.mkdir(parents=True)
    (config / "credentials.yml").write_text(
        "default:\n  refresh_token: Atzr|from-the-file\n  client_id: file-client\n"
        "  client_secret: file-secret\n  profile_id: '1'\n")
    environ.setenv("HOME", str(tmp_path))
    environ.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    # why: without credentials of its own, the library reads that file
    assert Profiles().credentials["refresh_token"] == "Atzr|from-the-file"

    unreachable = f"http://127.0.0.1:{free_port()}/auth/o2/token"
    for name, value in {"LWA_CLIENT_SECRET": "stray-secret-value", "LWA_REFRESH_TOKEN": "Atzr|stray",
                        "LWA_TOKEN_URL_NA": unreachable, "AD_API_CLIENT_ID": "stray-client"}.items():
        environ.setenv(name, value)
    clear_cache()
    kwargs = ad_api_kwargs(NA_PROFILE)
    assert kwargs == expected
    before = stack.emulator.count("token")
    api = Profiles(**kwargs)
    assert api.credentials == expected["credentials"]
    assert [p["profileId"] for p in api.list_profiles().payload] == [p["profileId"] for p in DEFAULT_PROFILES["NA"]]
    assert stack.emulator.count("token") == before


def test_a_401_gets_one_fresh_token(stack, connected):
    old = get_access_token(profile_id=NA_PROFILE)  # cached, as in a warm Lambda
    assert wiring.refresher().refresh(connected.advertiser_id, force=True).outcome == "refreshed"
    stack.emulator.expire_access_token(old)
    assert ad_api_kwargs(NA_PROFILE)["access_token"] == old  # the cache does not know yet

    before = stack.emulator.count("campaigns")
    campaigns = call_ad_api(NA_PROFILE, list_enabled_campaigns).payload["campaigns"]
    assert [c["campaignId"] for c in campaigns] == [f"{NA_PROFILE}01"]
    assert stack.emulator.count("campaigns") - before == 2  # the 401, then the call with the new token
    fresh = get_access_token(profile_id=NA_PROFILE)
    remember(old, fresh)
    assert fresh != old and stack.emulator.access_token_info(fresh)["expires_at"] > stack.emulator.clock()


def test_a_second_401_is_a_typed_error_not_a_loop(stack, connected):
    call_ad_api(NA_PROFILE, list_enabled_campaigns)
    stack.emulator.revoke_grant(DEFAULT_USER, CLIENT_ID)
    before = stack.emulator.count("campaigns")
    with pytest.raises(AdsApiRejected) as rejected:
        call_ad_api(NA_PROFILE, list_enabled_campaigns)
    assert rejected.value.status == 401 and rejected.value.advertiser_id == connected.advertiser_id
    assert stack.emulator.count("campaigns") - before == 2

    # once the refresher has marked the advertiser, the same failure says what to do
    boto3.resource("dynamodb").Table(TABLE_NAME).update_item(
        Key=schema.advertiser_key(connected.advertiser_id), UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": "needs_reauth"})
    with pytest.raises(NeedsReauthorization) as raised:
        call_ad_api(NA_PROFILE, list_enabled_campaigns)
    assert raised.value.advertiser_id == connected.advertiser_id


def test_an_unknown_profile_is_an_adsauth_error(stack, connected):
    before = len(stack.emulator.calls)
    for attempt in (lambda: ad_api_kwargs(999), lambda: call_ad_api("999", list_enabled_campaigns)):
        with pytest.raises(AdvertiserNotFound) as unknown:
            attempt()
        assert str(unknown.value) == "profile 999 belongs to no known advertiser"
    for bad in ("12abc", -1, 0, True, 1.5, "", "١٢"):
        with pytest.raises(ValueError) as refused:
            ad_api_kwargs(bad)
        assert str(refused.value) == "profile_id must be a positive integer"
    assert len(stack.emulator.calls) == before  # nothing reached the API


def test_an_unreachable_host_is_an_adsauth_error(stack, connected, environ):
    environ.setenv("ADS_API_URL_NA", f"http://127.0.0.1:{free_port()}/na")
    clear_cache()
    with pytest.raises(AdsApiUnreachable) as unreachable:
        call_ad_api(NA_PROFILE, list_enabled_campaigns, timeout=2)
    assert str(unreachable.value) == f"the Ads API did not answer for profile {NA_PROFILE} (connection failed)"
    assert unreachable.value.__cause__ is None and unreachable.value.__suppress_context__


def strings_in(value: object, depth: int = 0, seen: set[int] | None = None) -> set[str]:
    """Every string reachable from ``value`` (containers and object attributes), to scan for secrets."""
    seen = set() if seen is None else seen
    if isinstance(value, str):
        return {value}
    if depth > 6 or id(value) in seen or isinstance(value, (int, float, bytes, type(None))):
        return set()
    seen.add(id(value))
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        items = list(getattr(value, "__dict__", {}).values())
    found: set[str] = set()
    for item in items:
        found |= strings_in(item, depth + 1, seen)
    return found
