"""The lifecycle's rules on the in-memory stand-ins: grants and their end, re-consent leads, the
generation, the claim and the caps (the DynamoDB side of the same rules: tests/integration)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from adsauth.errors import (
    InvalidRequest,
    InvitationBusy,
    InvitationReplaced,
    InvitationUsed,
    StateReplayed,
    TooManyAttempts,
    TransitionRefused,
)
from adsauth.lifecycle import grant_ended, grant_for, reconsent_due
from adsauth.models import AdvertiserStatus, TokenSet
from adsauth.onboarding import Onboarding
from adsauth.refresher import Refresher
from adsauth.regions import Region
from local.memory import MemoryMailer, MemoryPublisher
from tests.unit.fakes import Clock, FakeAds, FakeLwa, FakeNotifier, FakeQueue, FakeStore, FakeVault, make_settings

DAY = 86400
JUNE_30 = datetime(2026, 6, 30, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def world():
    clock = Clock(datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp())
    settings = make_settings(SES_FROM_ADDRESS="ads@agency.example")
    store, vault, lwa, ads = FakeStore(settings.due_schedule), FakeVault(), FakeLwa(clock), FakeAds()
    publisher, mailer, notifier = MemoryPublisher(), MemoryMailer(), FakeNotifier()
    flow = Onboarding(settings=settings, store=store, vault=vault, lwa=lwa, ads=ads, clock=clock, publisher=publisher)
    refresher = Refresher(settings=settings, store=store, vault=vault, lwa=lwa, ads=ads, notifier=notifier,
                          queue=FakeQueue(), clock=clock, sleep=lambda _s: None, publisher=publisher, mailer=mailer)
    return flow, refresher, store, vault, lwa, clock, publisher, mailer, notifier


def open_flow(flow, token):
    redirect = flow.start(token)
    state = parse_qs(urlsplit(redirect.authorize_url).query)["state"][0]
    return flow.check_state(state, {redirect.cookie_name: redirect.cookie_value})


# --- grants -----------------------------------------------------------------------------------------
def test_a_grant_from_a_consent_on_or_after_june_30_2026_ends_365_days_later():
    s, now = make_settings(), JUNE_30 + 10 * DAY
    assert grant_for(s, JUNE_30, now=now).expires_at == JUNE_30 + 365 * DAY
    assert grant_for(s, JUNE_30, now=now).basis == "consent"
    before = grant_for(s, JUNE_30 - 1, now=now)
    assert (before.expires_at, before.basis) == (None, "none")


def test_refresh_token_expires_in_wins_and_the_date_and_lifetime_are_configuration():
    s = make_settings(GRANT_EXPIRY_FROM="2027-01-01", GRANT_LIFETIME_DAYS="90")
    now = datetime(2027, 2, 1, tzinfo=timezone.utc).timestamp()
    assert grant_for(s, now, now=now).expires_at == now + 90 * DAY
    assert grant_for(s, now - 60 * DAY, now=now).basis == "none"  # before 2027-01-01
    tokens = TokenSet("Atza|a", "Atzr|r", now + 3600, refresh_token_expires_in=5 * DAY)
    g = grant_for(s, now, tokens, now=now)
    assert (g.expires_at, g.basis) == (now + 5 * DAY, "token_response")


def test_an_unknown_consent_date_takes_the_earliest_end_it_could_have():
    s = make_settings()
    now = datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()
    g = grant_for(s, None, now=now)
    assert (g.consented_at, g.expires_at, g.basis) == (None, JUNE_30 + 365 * DAY, "unknown_consent")
    later = JUNE_30 + 400 * DAY
    assert grant_for(s, None, now=later).expires_at == later  # past the earliest end: ask at once


@pytest.mark.parametrize("value", ["2026-13-01", "June", ""])
def test_bad_grant_configuration_is_refused(value):
    if value == "":
        assert make_settings(GRANT_EXPIRY_FROM=value).grant_expiry_from == JUNE_30  # default
        return
    with pytest.raises(ValueError, match="GRANT_EXPIRY_FROM"):
        make_settings(GRANT_EXPIRY_FROM=value)


@pytest.mark.parametrize("leads", ["0", "400", "a,b", "-1"])
def test_bad_reconsent_leads_are_refused(leads):
    with pytest.raises(ValueError, match="RECONSENT_LEAD_DAYS"):
        make_settings(RECONSENT_LEAD_DAYS=leads)


def test_reconsent_is_due_at_each_lead_once_and_only_for_known_ends(world):
    flow, _r, store, *_ = world
    s = make_settings()
    adv, _t = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    adv = replace(adv, status=AdvertiserStatus.CONNECTED, grant_expires_at=1000 * DAY, grant_expiry_basis="consent")
    assert reconsent_due(adv, s, 1000 * DAY - 31 * DAY) == ()
    assert reconsent_due(adv, s, 1000 * DAY - 30 * DAY) == (30,)
    assert reconsent_due(adv, s, 1000 * DAY - 5 * DAY) == (30, 7)  # both passed: one invitation
    assert reconsent_due(replace(adv, reconsent_leads_sent=(30, 7)), s, 1000 * DAY - 5 * DAY) == ()
    assert reconsent_due(replace(adv, grant_expires_at=None), s, 0) == ()
    assert grant_ended(adv, 1000 * DAY - 700, 720) and not grant_ended(adv, 1000 * DAY - 800, 720)
    assert not grant_ended(replace(adv, grant_expiry_basis="unknown_consent"), 1000 * DAY, 720)


# --- finding 6: the e-mail address ------------------------------------------------------------------
@pytest.mark.parametrize("email", ["a@b.example\n", "a@b.example\r\nBcc: x@y.example", " a@b.example", "a@b.example "])
def test_an_email_with_a_line_break_or_spaces_is_refused_and_nothing_is_stored(world, email):
    flow, _r, store, *_ = world
    with pytest.raises(InvalidRequest, match="email"):
        flow.invite(name="Acme", email=email, region=Region.NA)
    assert store.advertisers == {} and store.invitations == {}


# --- generations, claim, caps -------------------------------------------------------------------------
def test_every_transition_that_bumps_the_generation_kills_older_links_and_states(world):
    flow, refresher, store, _v, lwa, *_ = world
    adv, first = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    pending, verifier = open_flow(flow, first)
    _adv, second = flow.reinvite(adv.advertiser_id)
    with pytest.raises(InvitationReplaced):
        flow.start(first)
    with pytest.raises(InvitationReplaced):
        flow.complete(pending, verifier, code="c", error=None)
    assert lwa.calls == [] and store.get_advertiser(adv.advertiser_id).generation == 2
    pending, verifier = open_flow(flow, second)
    flow.cancel(adv.advertiser_id)
    with pytest.raises(InvitationReplaced):
        flow.complete(pending, verifier, code="c", error=None)
    assert store.get_advertiser(adv.advertiser_id).status is AdvertiserStatus.CANCELLED
    with pytest.raises(TransitionRefused, match="no open invitation"):
        flow.cancel(adv.advertiser_id)
    _adv, third = flow.reinvite(adv.advertiser_id)
    assert store.get_advertiser(adv.advertiser_id).status is AdvertiserStatus.INVITED
    pending, verifier = open_flow(flow, third)
    refresher.revoke(adv.advertiser_id)
    with pytest.raises(InvitationReplaced):
        flow.complete(pending, verifier, code="c", error=None)
    assert lwa.calls == []


def test_the_claim_lets_one_flow_exchange_and_completes_once(world):
    flow, _r, store, _v, lwa, clock, *_ = world
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    a, b = open_flow(flow, token), open_flow(flow, token)
    store.claim_invitation(a[0], now=clock(), claim_seconds=60, max_calls=5, window_seconds=600)
    with pytest.raises(InvitationBusy):
        flow.complete(*b, code="c2", error=None)
    assert store.release_invitation(a[0].invitation_hash, a[0].state_hash)
    assert flow.complete(*b, code="c2", error=None).outcome == "connected"
    with pytest.raises(StateReplayed):
        flow.complete(*a, code="c1", error=None)  # its state was used up by the claim
    with pytest.raises(InvitationUsed):  # a new flow of a completed invitation is refused
        flow.start(token)
    assert len(lwa.calls) == 1


def test_flows_and_token_calls_per_invitation_are_capped_per_window(world):
    flow, _r, store, _v, lwa, clock, *_ = world
    _adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    flows = [open_flow(flow, token) for _ in range(10)]
    with pytest.raises(TooManyAttempts):
        flow.start(token)
    from tests.unit.fakes import GrantInvalid

    lwa.fail = GrantInvalid()
    outcomes = []
    for pending, verifier in flows:
        try:
            outcomes.append(flow.complete(pending, verifier, code="made-up", error=None).reason)
        except TooManyAttempts:
            outcomes.append("capped")
    assert outcomes == ["code_rejected"] * 5 + ["capped"] * 5 and len(lwa.calls) == 5
    clock.advance(600)  # the next window
    assert flow.start(token).authorize_url


def test_a_stale_decline_never_downgrades_and_a_current_one_is_announced(world):
    flow, refresher, store, *_rest = world
    publisher = world[6]
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    pending, verifier = open_flow(flow, token)
    assert flow.complete(pending, verifier, code=None, error="access_denied").outcome == "declined"
    assert store.get_advertiser(adv.advertiser_id).status is AdvertiserStatus.DECLINED
    assert publisher.types(adv.advertiser_id) == ["AdvertiserInvited", "AdvertiserDeclined"]


# --- re-consent end to end on the fakes ---------------------------------------------------------------
def test_reconsent_is_started_once_per_lead_emailed_and_completing_it_replaces_the_grant(world):
    flow, refresher, store, vault, lwa, clock, publisher, mailer, _n = world
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.EU)
    assert flow.complete(*open_flow(flow, token), code="c", error=None).outcome == "connected"
    first_grant = vault.refresh[adv.advertiser_id]
    saved = store.get_advertiser(adv.advertiser_id)
    assert saved.grant_expires_at == saved.consented_at + 365 * DAY and saved.grant_expiry_basis == "consent"
    clock.advance(335 * DAY + 60)
    result = refresher.refresh(adv.advertiser_id)
    assert result.reconsent_lead == 30 and result.outcome == "refreshed" and len(mailer.sent) == 1
    to, _subject, body = mailer.sent[0]
    assert to == "a@b.example" and "/connect/" in body
    link_token = body.split("/connect/", 1)[1].split()[0]
    assert refresher.refresh(adv.advertiser_id, force=True).reconsent_lead is None and len(mailer.sent) == 1
    saved = store.get_advertiser(adv.advertiser_id)
    assert saved.status is AdvertiserStatus.CONNECTED and saved.reconsent_pending and saved.generation == 2
    assert flow.complete(*open_flow(flow, link_token), code="c2", error=None).outcome == "connected"
    saved = store.get_advertiser(adv.advertiser_id)
    assert not saved.reconsent_pending and saved.grant_expires_at == clock() + 365 * DAY
    assert vault.refresh[adv.advertiser_id] != first_grant
    assert "ReconsentCompleted" in publisher.types(adv.advertiser_id)
    assert publisher.types(adv.advertiser_id).count("GrantExpiring") == 1


def test_without_reconsent_the_grant_ends_as_needs_reauth_before_lwa_is_asked(world):
    flow, refresher, store, vault, lwa, clock, publisher, _m, notifier = world
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    flow.complete(*open_flow(flow, token), code="c", error=None)
    clock.advance(365 * DAY - 600)
    before = len(lwa.refresh_calls)
    result = refresher.refresh(adv.advertiser_id)
    assert (result.outcome, result.reason) == ("needs_reauth", "grant_expired") and len(lwa.refresh_calls) == before
    assert store.get_advertiser(adv.advertiser_id).status_reason == "grant_expired"
    assert publisher.types(adv.advertiser_id)[-1] == "AdvertiserNeedsReauth"
    assert any("grant is ending" in subject for subject, _ in notifier.alerts)
    assert store.due.get(adv.advertiser_id) is None


def test_the_grant_end_is_a_deadline_of_the_due_index(world):
    flow, refresher, store, _v, _l, clock, *_ = world
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    flow.complete(*open_flow(flow, token), code="c", error=None)
    saved = store.get_advertiser(adv.advertiser_id)
    clock.now = saved.grant_expires_at - 1800  # its token would last past the end
    store.advertisers[adv.advertiser_id] = replace(saved, token_expires_at=clock() + 3000)
    refresher.refresh(adv.advertiser_id, force=True)
    assert store.due[adv.advertiser_id] == saved.grant_expires_at


def test_an_advertiser_connected_before_grants_were_recorded_gets_its_grant_from_its_connection(world):
    flow, refresher, store, vault, lwa, clock, publisher, mailer, _n = world
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    flow.complete(*open_flow(flow, token), code="c", error=None)
    legacy = store.get_advertiser(adv.advertiser_id)
    store.advertisers[adv.advertiser_id] = replace(legacy, consented_at=None, grant_expires_at=None, grant_expiry_basis="")
    clock.advance(3000)
    assert refresher.refresh(adv.advertiser_id).outcome == "refreshed"
    saved = store.get_advertiser(adv.advertiser_id)
    assert (saved.grant_expiry_basis, saved.grant_expires_at) == ("consent", legacy.connected_at + 365 * DAY)
    clock.now = saved.grant_expires_at - 30 * DAY + 60
    assert refresher.refresh(adv.advertiser_id).reconsent_lead == 30 and len(mailer.sent) == 1


def test_without_a_mailer_a_lead_alerts_ops_and_replaces_no_link(world):
    flow, _r, store, vault, lwa, clock, publisher, _m, notifier = world
    refresher = Refresher(settings=make_settings(), store=store, vault=vault, lwa=lwa, ads=FakeAds(), notifier=notifier,
                          queue=FakeQueue(), clock=clock, sleep=lambda _s: None, publisher=publisher)
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    flow.complete(*open_flow(flow, token), code="c", error=None)
    clock.advance(335 * DAY + 60)
    _adv, ops_link = flow.reinvite(adv.advertiser_id)  # ops sent a link of their own
    assert refresher.refresh(adv.advertiser_id).reconsent_lead == 30
    saved = store.get_advertiser(adv.advertiser_id)
    assert saved.generation == 2 and saved.reconsent_leads_sent == (30,)  # no new generation
    assert any("reinvite" in message for _s, message in notifier.alerts)
    assert publisher.types(adv.advertiser_id)[-1] == "GrantExpiring"
    assert flow.complete(*open_flow(flow, ops_link), code="c2", error=None).outcome == "connected"


def test_the_last_lead_does_not_wait_for_an_open_flow(world):
    flow, refresher, store, *_rest = world
    clock, mailer = world[5], world[7]
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    flow.complete(*open_flow(flow, token), code="c", error=None)
    clock.advance(335 * DAY + 60)
    assert refresher.refresh(adv.advertiser_id).reconsent_lead == 30
    link = mailer.sent[-1][2].split("/connect/", 1)[1].split()[0]
    clock.advance(23 * DAY)
    open_flow(flow, link)  # someone is at Amazon with the 30-day link
    assert refresher.refresh(adv.advertiser_id, force=True).reconsent_lead is None  # the 7-day lead waits
    clock.advance(6 * DAY)
    open_flow(flow, link)  # still (or again) at Amazon: at the last lead the re-consent goes out anyway
    assert refresher.refresh(adv.advertiser_id, force=True).reconsent_lead == 1


def test_a_refresh_of_the_old_grant_never_overwrites_a_reconsent_completed_meanwhile(world):
    flow, refresher, store, vault, lwa, clock, _p, mailer, _n = world
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    flow.complete(*open_flow(flow, token), code="c", error=None)
    clock.advance(335 * DAY + 60)
    refresher.refresh(adv.advertiser_id)
    link = mailer.sent[-1][2].split("/connect/", 1)[1].split()[0]
    clock.advance(3000)  # the token is due again

    def advertiser_completes_the_reconsent():
        lwa.before_refresh = None
        assert flow.complete(*open_flow(flow, link), code="c2", error=None).outcome == "connected"

    lwa.before_refresh = advertiser_completes_the_reconsent
    result = refresher.refresh(adv.advertiser_id)
    assert (result.outcome, result.reason) == ("superseded", "lease_lost")
    new_access = vault.access[adv.advertiser_id]
    assert store.get_advertiser(adv.advertiser_id).grant_expires_at == clock() + 365 * DAY
    assert new_access[1] == store.get_advertiser(adv.advertiser_id).token_expires_at  # the new grant's token stayed


def test_a_manual_exchange_does_not_reconnect_a_revoked_advertiser_without_a_new_invitation(world):
    flow, refresher, store, _v, lwa, *_ = world
    adv, token = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    flow.complete(*open_flow(flow, token), code="c", error=None)
    refresher.revoke(adv.advertiser_id)
    calls = len(lwa.calls)
    with pytest.raises(TransitionRefused, match="reinvite"):
        flow.exchange_manual(advertiser_id=adv.advertiser_id, code="c2", redirect_uri="https://x.example/cb", region=Region.NA)
    assert len(lwa.calls) == calls
    flow.reinvite(adv.advertiser_id)
    assert flow.exchange_manual(advertiser_id=adv.advertiser_id, code="c3", redirect_uri="https://x.example/cb",
                                region=Region.NA).outcome == "connected"


def test_an_imported_refresh_token_cannot_be_imported_twice_and_an_expired_one_is_refused_before_lwa(world):
    flow, _r, store, vault, lwa, clock, *_ = world
    tokens = lwa.grant()
    adv, result = flow.import_advertiser(name="Acme", email="a@b.example", region=Region.NA,
                                         refresh_token=tokens.refresh_token, consented_at=clock() - 10 * DAY, lwa=lwa)
    assert result.outcome == "connected" and store.get_advertiser(adv.advertiser_id).grant_expiry_basis == "consent"
    calls = len(lwa.refresh_calls)
    with pytest.raises(InvalidRequest, match="imported already"):
        flow.import_advertiser(name="Acme 2", email="a@b.example", region=Region.NA,
                               refresh_token=tokens.refresh_token, consented_at=None, lwa=lwa)
    clock.now = JUNE_30 + 370 * DAY
    with pytest.raises(InvalidRequest, match="expired already"):  # consented 2026-07-01: ended 2027-07-01
        flow.import_advertiser(name="Old", email="a@b.example", region=Region.NA, refresh_token=lwa.grant().refresh_token,
                               consented_at=JUNE_30 + DAY, lwa=lwa)
    assert len(lwa.refresh_calls) == calls and len(store.advertisers) == 1
