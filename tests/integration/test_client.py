"""The downstream client against the local stack: tokens stored by a real authorization, profiles
served by the emulator, and the emulator's faults and revocations."""

from __future__ import annotations

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from adsauth import client, schema
from adsauth.client import (
    AdsApiRejected,
    AdsApiSession,
    NeedsReauthorization,
    clear_cache,
    get_access_token,
    get_token_info,
)
from local.emulator import DEFAULT_PROFILES, DEFAULT_USER
from local.stack import CLIENT_ID, TABLE_NAME
from tests.conftest import remember

NA_PROFILE = DEFAULT_PROFILES["NA"][0]["profileId"]
EU_PROFILE = DEFAULT_PROFILES["EU"][0]["profileId"]


@pytest.fixture
def connected(stack, flow):
    clear_cache()
    parameters.clear_caches()
    f = flow()
    f.consent()
    assert f.callback().status_code == 303
    yield f
    remember(*(token.value for token, _ in client._tokens.values()))
    clear_cache()


def test_token_of_a_connected_advertiser_is_the_stored_one(stack, connected):
    info = get_token_info(advertiser_id=connected.advertiser_id)
    remember(info.value)
    emulated = stack.emulator.access_token_info(info.value)
    assert emulated is not None and emulated["client_id"] == CLIENT_ID and not emulated["revoked"]
    assert abs(emulated["expires_at"] - info.expires_at) < 5
    assert get_access_token(advertiser_id=connected.advertiser_id) == info.value


def test_token_by_profile_id(stack, connected):
    token = get_access_token(profile_id=EU_PROFILE, min_remaining_minutes=10)
    remember(token)
    assert token == get_access_token(advertiser_id=connected.advertiser_id)
    assert get_token_info(profile_id=NA_PROFILE).advertiser_id == connected.advertiser_id


@pytest.mark.parametrize("profile_id, region", [(NA_PROFILE, "NA"), (EU_PROFILE, "EU")])
def test_session_lists_the_profiles_of_the_profiles_region(stack, connected, profile_id, region):
    session = AdsApiSession(profile_id)
    assert [p["profileId"] for p in session.list_profiles()] == [p["profileId"] for p in DEFAULT_PROFILES[region]]
    assert session.region.value == region


def test_session_survives_one_throttle(stack, connected):
    stack.emulator.fault("profiles", "429", times=1, retry_after=0)
    before = stack.emulator.count("profiles")
    profiles = AdsApiSession(NA_PROFILE).list_profiles()
    assert [p["profileId"] for p in profiles] == [p["profileId"] for p in DEFAULT_PROFILES["NA"]]
    assert stack.emulator.count("profiles") - before == 2


def test_revoked_grant_gives_a_typed_error_after_one_reread(stack, connected):
    session = AdsApiSession(NA_PROFILE)
    session.list_profiles()
    stack.emulator.revoke_grant(DEFAULT_USER, CLIENT_ID)
    before = stack.emulator.count("profiles")
    with pytest.raises(AdsApiRejected) as raised:
        session.list_profiles()
    assert raised.value.status == 401 and raised.value.advertiser_id == connected.advertiser_id
    assert stack.emulator.count("profiles") - before == 2

    # once the refresher has marked the advertiser, the same failure says what to do
    boto3.resource("dynamodb").Table(TABLE_NAME).update_item(
        Key=schema.advertiser_key(connected.advertiser_id),
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "needs_reauth"},
    )
    with pytest.raises(NeedsReauthorization) as raised:
        session.list_profiles()
    assert raised.value.advertiser_id == connected.advertiser_id
