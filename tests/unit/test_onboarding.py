"""The onboarding domain against in-memory fakes."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from adsauth import oauth
from adsauth.errors import (
    AdvertiserUnknown,
    ClientInvalid,
    GrantInvalid,
    InvalidRequest,
    InvitationExpired,
    InvitationUnknown,
    InvitationUsed,
    LwaUnavailable,
    StateExpired,
    StateInvalid,
    StateReplayed,
    StateUnbound,
)
from adsauth.models import AdvertiserStatus
from adsauth.onboarding import Onboarding
from adsauth.regions import Region
from tests.unit.fakes import Clock, FakeAds, FakeLwa, FakeStore, FakeVault, make_settings


@pytest.fixture
def world():
    clock = Clock()
    store, vault, lwa, ads = FakeStore(), FakeVault(), FakeLwa(clock), FakeAds()
    flow = Onboarding(settings=make_settings(), store=store, vault=vault, lwa=lwa, ads=ads, clock=clock)
    return flow, store, vault, lwa, ads, clock


def start_flow(flow, region=Region.EU):
    advertiser, token = flow.invite(name="Acme", email="ops@acme.example", region=region)
    redirect = flow.start(token)
    query = parse_qs(urlsplit(redirect.authorize_url).query)
    state = query["state"][0]
    cookies = {redirect.cookie_name: redirect.cookie_value}
    return advertiser, token, redirect, query, state, cookies


def test_start_builds_regional_authorize_url_with_pkce_s256(world):
    flow, store, *_ = world
    _adv, _token, redirect, query, state, _ = start_flow(flow, Region.EU)
    assert redirect.authorize_url.startswith("https://eu.account.amazon.com/ap/oa?")
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] == [oauth.s256(redirect.cookie_value)]
    assert query["redirect_uri"] == ["https://auth.example.com/prod/callback"]
    assert query["response_type"] == ["code"]
    assert query["scope"] == ["advertising::campaign_management"]
    assert len(state) >= 43  # 256 bits base64url
    # only the hash of the state is stored, and the verifier not at all
    assert oauth.digest(state) in store.states
    stored = repr(store.states) + repr(store.invitations)
    assert state not in stored and redirect.cookie_value not in stored
    assert redirect.cookie_name.startswith("__Host-")


def test_every_flow_gets_fresh_state_and_verifier(world):
    flow, *_ = world
    _adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    first, second = flow.start(token), flow.start(token)
    assert first.cookie_value != second.cookie_value
    assert first.authorize_url != second.authorize_url


def test_happy_path_stores_tokens_then_profiles(world):
    flow, store, vault, lwa, ads, _ = world
    adv, token, redirect, _q, state, cookies = start_flow(flow, Region.FE)
    pending, verifier = flow.check_state(state, cookies)
    result = flow.complete(pending, verifier, code="code-1", error=None)
    assert result.outcome == "connected"
    assert lwa.calls == [(Region.FE, "code-1", "https://auth.example.com/prod/callback", redirect.cookie_value)]
    assert vault.order == ["refresh", "access"]  # the grant is saved before anything else
    assert sorted(r.value for r in ads.calls) == ["EU", "FE", "NA"]
    saved = store.get_advertiser(adv.advertiser_id)
    assert saved.status is AdvertiserStatus.CONNECTED and saved.pending_regions == ()
    assert len(store.list_profiles(adv.advertiser_id)) == 2
    assert store.invitations[oauth.digest(token)].completed_at is not None
    with pytest.raises(InvitationUsed):
        flow.start(token)


def test_region_failure_is_recorded_pending(world):
    flow, store, _v, _l, ads, _ = world
    ads.down = {Region.EU}
    adv, *_rest, state, cookies = start_flow(flow)
    result = flow.complete(*flow.check_state(state, cookies), code="c", error=None)
    assert result.outcome == "connected" and result.regions_pending == ("EU",)
    assert store.get_advertiser(adv.advertiser_id).pending_regions == (Region.EU,)


@pytest.mark.parametrize(
    "failure, reason, outcome",
    [
        (GrantInvalid(), "code_rejected", "retry"),
        (LwaUnavailable(), "amazon_unavailable", "retry"),
        (ClientInvalid(), "client_misconfigured", "failed"),
    ],
)
def test_exchange_failures_store_nothing_and_set_status(world, failure, reason, outcome):
    flow, store, vault, lwa, _a, _ = world
    lwa.fail = failure
    adv, token, *_rest, state, cookies = start_flow(flow)
    result = flow.complete(*flow.check_state(state, cookies), code="c", error=None)
    assert (result.outcome, result.reason) == (outcome, reason)
    assert vault.refresh == {} and vault.access == {}
    saved = store.get_advertiser(adv.advertiser_id)
    assert saved.status is AdvertiserStatus.FAILED and saved.status_reason == reason
    assert store.invitations[oauth.digest(token)].completed_at is None  # the link can be retried


@pytest.mark.parametrize("failing", ["put_grant", "_put_access_checked", "complete_connection"])
def test_a_storage_failure_after_the_exchange_fails_the_attempt_visibly(world, monkeypatch, failing):
    """Secrets Manager or DynamoDB failing after LwA answered: the status and the page say so
    (never "invited" and a 500), and the invitation link works again."""
    flow, store, vault, *_ = world
    target = store if failing == "complete_connection" else vault

    def broken(*_args, **_kwargs):
        raise RuntimeError("the service failed")

    monkeypatch.setattr(target, failing, broken)
    adv, token, *_rest, state, cookies = start_flow(flow)
    result = flow.complete(*flow.check_state(state, cookies), code="c", error=None)
    assert (result.outcome, result.reason) == ("failed", "storage_unavailable")
    saved = store.get_advertiser(adv.advertiser_id)
    assert saved.status is AdvertiserStatus.FAILED and saved.status_reason == "storage_unavailable"
    assert store.invitations[oauth.digest(token)].completed_at is None
    monkeypatch.undo()
    *_x, state, cookies = start_flow_again(flow, token)
    assert flow.complete(*flow.check_state(state, cookies), code="c2", error=None).outcome == "connected"
    assert store.get_advertiser(adv.advertiser_id).status is AdvertiserStatus.CONNECTED


def test_a_failed_audit_event_does_not_undo_a_stored_connection(world, monkeypatch):
    flow, store, *_ = world
    monkeypatch.setattr(store, "add_event", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("down")))
    adv, *_rest, state, cookies = start_flow(flow)
    assert flow.complete(*flow.check_state(state, cookies), code="c", error=None).outcome == "connected"
    assert store.get_advertiser(adv.advertiser_id).status is AdvertiserStatus.CONNECTED


def start_flow_again(flow, token):
    redirect = flow.start(token)
    state = parse_qs(urlsplit(redirect.authorize_url).query)["state"][0]
    return redirect, state, {redirect.cookie_name: redirect.cookie_value}


def test_decline_records_declined_without_token_call(world):
    flow, store, vault, lwa, *_ = world
    adv, *_rest, state, cookies = start_flow(flow)
    result = flow.complete(*flow.check_state(state, cookies), code=None, error="access_denied")
    assert result.outcome == "declined"
    assert lwa.calls == [] and vault.refresh == {}
    assert store.get_advertiser(adv.advertiser_id).status is AdvertiserStatus.DECLINED


@pytest.mark.parametrize("error", ["invalid_request", "unauthorized_client", "invalid_scope", "server_error", "bogus"])
def test_other_authorize_errors_fail_without_token_call(world, error):
    flow, store, _v, lwa, *_ = world
    adv, *_rest, state, cookies = start_flow(flow)
    result = flow.complete(*flow.check_state(state, cookies), code=None, error=error)
    assert result.outcome in ("failed", "retry") and lwa.calls == []
    assert store.get_advertiser(adv.advertiser_id).status_reason in (error, "authorization_error")


def test_state_checks(world):
    flow, _s, _v, lwa, _a, clock = world
    _adv, _t, redirect, _q, state, cookies = start_flow(flow)
    with pytest.raises(StateInvalid):
        flow.check_state(None, cookies)
    with pytest.raises(StateInvalid):
        flow.check_state(oauth.new_state(), cookies)  # forged
    with pytest.raises(StateUnbound):
        flow.check_state(state, {})  # no cookie
    with pytest.raises(StateUnbound):
        flow.check_state(state, {redirect.cookie_name: oauth.new_verifier()})  # another browser's
    pending, verifier = flow.check_state(state, cookies)
    flow.complete(pending, verifier, code="c", error=None)
    with pytest.raises(StateReplayed):
        flow.complete(pending, verifier, code="c", error=None)
    assert len(lwa.calls) == 1


def test_state_expires_after_ten_minutes_in_code(world):
    flow, *_rest, clock = world
    *_x, state, cookies = start_flow(flow)
    clock.advance(600)
    with pytest.raises(StateExpired):
        flow.check_state(state, cookies)


def test_invitation_checks(world):
    flow, *_rest, clock = world
    with pytest.raises(InvitationUnknown):
        flow.start("x" * 43)
    with pytest.raises(InvitationUnknown):
        flow.start("<script>")
    _adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA, ttl_seconds=60)
    clock.advance(61)
    with pytest.raises(InvitationExpired):
        flow.start(token)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "", "email": "a@b.example", "region": Region.NA},
        {"name": "x" * 201, "email": "a@b.example", "region": Region.NA},
        {"name": "Acme", "email": "not-an-email", "region": Region.NA},
        {"name": "Acme\n", "email": "a@b.example<script>", "region": Region.NA},
    ],
)
def test_invite_rejects_bad_input_and_stores_nothing(world, kwargs):
    flow, store, *_ = world
    with pytest.raises(InvalidRequest):
        flow.invite(**kwargs)
    assert store.writes == 0


def test_region_outside_configuration_is_refused(world):
    _flow, store, vault, lwa, ads, clock = world
    flow = Onboarding(settings=make_settings(ALLOWED_REGIONS="NA"), store=store, vault=vault, lwa=lwa, ads=ads, clock=clock)
    with pytest.raises(InvalidRequest):
        flow.invite(name="Acme", email="a@b.example", region=Region.EU)
    adv, _ = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    with pytest.raises(InvalidRequest):
        flow.exchange_manual(advertiser_id=adv.advertiser_id, code="c", redirect_uri="https://x.example", region=Region.FE)
    assert lwa.calls == []


def test_manual_exchange(world):
    flow, store, vault, lwa, *_ = world
    with pytest.raises(AdvertiserUnknown):
        flow.exchange_manual(advertiser_id="adv-missing", code="c", redirect_uri="https://amazon.com", region=Region.NA)
    assert lwa.calls == []
    adv, _ = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    result = flow.exchange_manual(advertiser_id=adv.advertiser_id, code="c", redirect_uri="https://amazon.com", region=Region.NA)
    assert result.outcome == "connected"
    assert lwa.calls == [(Region.NA, "c", "https://amazon.com", None)]
    assert adv.advertiser_id in vault.refresh


def test_a_later_decline_or_failure_never_undoes_a_connection(world):
    flow, store, _v, lwa, *_ = world
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    tab_one, tab_two = flow.start(token), flow.start(token)

    def state_of(redirect):
        return parse_qs(urlsplit(redirect.authorize_url).query)["state"][0], {redirect.cookie_name: redirect.cookie_value}

    s1, c1 = state_of(tab_one)
    s2, c2 = state_of(tab_two)
    assert flow.complete(*flow.check_state(s1, c1), code="c1", error=None).outcome == "connected"
    assert flow.complete(*flow.check_state(s2, c2), code=None, error="access_denied").outcome == "declined"
    assert store.get_advertiser(adv.advertiser_id).status is AdvertiserStatus.CONNECTED
    lwa.fail = GrantInvalid()
    flow.exchange_manual(advertiser_id=adv.advertiser_id, code="bad", redirect_uri="https://amazon.com", region=Region.NA)
    assert store.get_advertiser(adv.advertiser_id).status is AdvertiserStatus.CONNECTED


def test_reinvite_issues_a_new_link_whose_completion_replaces_the_grant(world):
    flow, store, vault, *_ = world
    with pytest.raises(AdvertiserUnknown):
        flow.reinvite("adv-missing")
    adv, first = flow.invite(name="Acme", email="a@b.example", region=Region.FE)
    state, cookies = start_flow_for(flow, first)
    flow.complete(*flow.check_state(state, cookies), code="c1", error=None)
    old_grant = vault.refresh[adv.advertiser_id]
    store.advertisers[adv.advertiser_id] = replace(store.advertisers[adv.advertiser_id],
                                                   status=AdvertiserStatus.NEEDS_REAUTH, status_reason="invalid_grant")
    same, second = flow.reinvite(adv.advertiser_id)
    assert same.advertiser_id == adv.advertiser_id and second != first
    state, cookies = start_flow_for(flow, second)
    assert flow.complete(*flow.check_state(state, cookies), code="c2", error=None).outcome == "connected"
    assert vault.refresh[adv.advertiser_id] != old_grant
    assert store.get_advertiser(adv.advertiser_id).status is AdvertiserStatus.CONNECTED


def start_flow_for(flow, token):
    redirect = flow.start(token)
    state = parse_qs(urlsplit(redirect.authorize_url).query)["state"][0]
    return state, {redirect.cookie_name: redirect.cookie_value}
