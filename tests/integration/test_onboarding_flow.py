"""The advertiser's journey through the local gateway, against moto server and the emulator."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from adsauth import oauth
from local.stack import CLIENT_ID
from tests.conftest import remember
from tests.integration.conftest import secret_names

REGION_HOSTS = {"NA": "/na/ap/oa", "EU": "/eu/ap/oa", "FE": "/fe/ap/oa"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def secret_value(name: str) -> dict:
    value = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
    remember(*(v for v in value.values() if isinstance(v, str)))
    return value


@pytest.mark.parametrize("region", ["NA", "EU", "FE"])
def test_connect_redirects_to_the_regional_authorize_url_with_binding_cookie(flow, stack, region):
    f = flow(region)
    location = urlsplit(f.authorize_url)
    assert location.path == REGION_HOSTS[region]
    query = parse_qs(location.query)
    assert query["redirect_uri"] == [stack.callback_url]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["response_type"] == ["code"] and query["client_id"] == [CLIENT_ID]
    cookie = f.connect.headers["Set-Cookie"]
    name = oauth.cookie_name(oauth.digest(f.state))
    assert cookie.startswith(name + "=")
    for attribute in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age=600"):
        assert attribute in cookie
    assert "Domain" not in cookie
    for header, value in SECURITY_HEADERS.items():
        assert f.connect.headers[header] == value


def test_allow_connects_the_advertiser_and_stores_tokens_and_profiles(flow, stack):
    f = flow("EU")
    f.consent("allow")
    answer = f.callback()
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"{stack.base_url}/result/connected"
    assert "code" not in answer.headers["Location"]
    page = f.browser.follow(answer)
    assert page.status_code == 200 and 'data-page="connected"' in page.text
    assert "Content-Security-Policy" in page.headers

    # exactly one exchange, at the token endpoint paired with the invitation's region
    token_calls = [c for c in stack.emulator.calls if c["endpoint"] == "token"]
    assert [(c["region"], c["grant_type"], c["status"]) for c in token_calls] == [("EU", "authorization_code", 200)]
    assert sorted(c["region"] for c in stack.emulator.calls if c["endpoint"] == "profiles") == ["EU", "FE", "NA"]

    advertiser = f.advertiser()
    assert advertiser["status"] == "connected" and advertiser["pending_regions"] == []
    assert "pack" not in advertiser  # a new grant lands in its own secrets, in the packed layout too
    prefix = "adsauth/local/advertisers/"
    refresh = secret_value(f"{prefix}refresh/{f.advertiser_id}")
    access = secret_value(f"{prefix}access/{f.advertiser_id}")
    assert refresh["refresh_token"].startswith("Atzr|")
    assert access["access_token"].startswith("Atza|")
    assert float(advertiser["token_expires_at"]) == pytest.approx(access["expires_at"], abs=1)
    info = stack.emulator.access_token_info(access["access_token"])
    assert info is not None and access["expires_at"] <= info["expires_at"]

    table = boto3.resource("dynamodb").Table("adsauth-local")
    profiles = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={":pk": f"ADV#{f.advertiser_id}", ":p": "PROFILE#"},
    )["Items"]
    assert sorted(p["region"] for p in profiles) == ["EU", "EU", "FE", "NA", "NA"]
    # advertiser by profile id, through the index
    from adsauth.wiring import onboarding

    assert onboarding().store.advertiser_by_profile(int(profiles[0]["profile_id"])) == f.advertiser_id
    # the invitation completes once
    again = f.browser.get(f.link)
    assert again.status_code == 409 and 'data-page="invitation_used"' in again.text


def test_double_submitted_callback_yields_one_exchange_and_one_result(flow, stack):
    f = flow()
    f.consent()
    first, second = f.callback(), f.callback()
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"] == f"{stack.base_url}/result/connected"
    assert stack.emulator.count("token") == 1


def test_decline_records_declined_and_makes_no_token_call(flow, stack):
    f = flow()
    f.consent("deny")
    answer = f.callback()
    assert answer.headers["Location"] == f"{stack.base_url}/result/declined"
    assert 'data-page="declined"' in f.browser.follow(answer).text
    assert f.advertiser()["status"] == "declined"
    assert stack.emulator.count("token") == 0
    assert f"adsauth/local/advertisers/refresh/{f.advertiser_id}" not in secret_names()
    # declining is not final: the same link can still be used to connect
    assert f.browser.get(f.link).status_code == 302


def test_a_region_that_fails_is_recorded_pending(flow, stack):
    stack.emulator.fault("profiles", "5xx", region="FE")
    f = flow()
    f.consent()
    assert f.callback().headers["Location"].endswith("/result/connected")
    advertiser = f.advertiser()
    assert advertiser["status"] == "connected"
    assert advertiser["pending_regions"] == ["FE"]
    assert stack.emulator.count("profiles", region="FE") == 3  # retried, then recorded pending


def test_throttled_token_endpoint_is_retried_honouring_retry_after(flow, stack):
    stack.emulator.fault("token", "429", times=1, retry_after=0)
    f = flow()
    f.consent()
    assert f.callback().headers["Location"].endswith("/result/connected")
    assert stack.emulator.count("token") == 2


def test_lwa_down_shows_retry_page_and_stores_no_token(flow, stack):
    stack.emulator.fault("token", "5xx")
    f = flow()
    f.consent()
    answer = f.callback()
    assert answer.headers["Location"].endswith("/result/retry")
    advertiser = f.advertiser()
    assert (advertiser["status"], advertiser["status_reason"]) == ("failed", "amazon_unavailable")
    assert f"adsauth/local/advertisers/refresh/{f.advertiser_id}" not in secret_names()
    stack.emulator.clear_faults()
    # the advertiser retries with the same invitation link and succeeds
    again = f.browser.open(f.link)
    assert again.status_code == 200  # the consent page again
    done = f.browser.follow(f.browser.click(again, "allow"))
    assert 'data-page="connected"' in done.text
    assert f.advertiser()["status"] == "connected"


def test_connection_reset_at_token_endpoint_is_not_resent(flow, stack):
    """The reset came after the code was sent: LwA may have used it, so it is never sent again
    (RFC 6749 §4.1.2); the advertiser retries with the link instead."""
    stack.emulator.fault("token", "reset", times=1)
    f = flow()
    f.consent()
    assert f.callback().headers["Location"].endswith("/result/retry")
    assert stack.emulator.count("token") == 1
    assert (f.advertiser()["status"], f.advertiser()["status_reason"]) == ("failed", "amazon_unavailable")
    done = f.browser.follow(f.browser.click(f.browser.open(f.link), "allow"))
    assert 'data-page="connected"' in done.text


def test_expired_code_shows_retry_page(flow, stack, emulator_clock):
    f = flow()
    f.consent()
    emulator_clock.offset = 301  # LwA codes live five minutes
    answer = f.callback()
    assert answer.headers["Location"].endswith("/result/retry")
    advertiser = f.advertiser()
    assert (advertiser["status"], advertiser["status_reason"]) == ("failed", "code_rejected")
    assert f"adsauth/local/advertisers/refresh/{f.advertiser_id}" not in secret_names()


def test_wrong_client_secret_fails_with_a_platform_error(flow, stack):
    f = flow()
    f.consent()
    stack.put_client_secret({"client_id": CLIENT_ID, "client_secret": "wrong-but-long-enough-0000"})
    try:
        answer = f.callback()
    finally:
        stack.put_client_secret({"client_id": CLIENT_ID, "client_secret": stack.client_secret})
    assert answer.headers["Location"].endswith("/result/failed")
    advertiser = f.advertiser()
    assert (advertiser["status"], advertiser["status_reason"]) == ("failed", "client_misconfigured")
    assert stack.emulator.count("token") == 1  # invalid_client is never retried


def test_state_is_stored_hashed_and_no_dynamodb_item_holds_a_secret(flow, stack):
    f = flow()
    f.consent()
    f.callback()
    table = boto3.resource("dynamodb").Table("adsauth-local")
    dump = json.dumps(table.scan()["Items"], default=str)  # test-only full read
    verifier = f.browser.history[0].headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    access = secret_value(f"adsauth/local/advertisers/access/{f.advertiser_id}")["access_token"]
    refresh = secret_value(f"adsauth/local/advertisers/refresh/{f.advertiser_id}")["refresh_token"]
    invitation_token = f.link.rsplit("/", 1)[1]
    for value in (f.state, f.code, verifier, access, refresh, invitation_token, stack.client_secret):
        assert value not in dump
    assert oauth.digest(f.state) in dump
