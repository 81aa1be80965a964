"""The advertiser's lifecycle at the seams between its paths, through the local gateway, moto and
the emulator: for every pair of actors that can touch one advertiser, both orders and at once,
asserting the final status, the secrets present and the LwA calls made.

Findings of issue 9 (each failed before the fix): 1 two states of one link both completing,
2 reinvite leaving the old link working, 3 revoke cancelling nothing, 4 a refresh racing a revoke
bringing the access token back, 5 a callback racing a revoke / stale tabs downgrading, 7 no cap
on flows and token calls per invitation. (Finding 6, the e-mail with a newline: unit tests.)

The stack runs the packed token layout. A new grant lands in the advertiser's own secrets (so
``secrets_of`` tells what a completion stored); that a revoke left no token is checked in the pack
too (``no_tokens``), and one race runs with the advertiser in a pack.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from adsauth import schema, wiring
from adsauth.client import NeedsReauthorization, clear_cache, get_access_token
from local.stack import SECRET_PREFIX, stored_tokens
from tests.conftest import remember
from tests.stack_fixtures import into_a_new_pack
from tests.integration.conftest import secret_names

DAY = 86400


def table():
    return boto3.resource("dynamodb").Table("adsauth-local")


def advertiser(advertiser_id: str) -> dict:
    return table().get_item(Key=schema.advertiser_key(advertiser_id))["Item"]


def secrets_of(advertiser_id: str) -> set[str]:
    return {n.rsplit("/", 2)[-2] for n in secret_names() if n.endswith("/" + advertiser_id)}


def no_tokens(advertiser_id: str, pack: str = "") -> bool:
    """No own secret of the advertiser, and no entry in the pack its item names (or ``pack``)."""
    if secrets_of(advertiser_id) or stored_tokens(advertiser_id) is not None:
        return False
    return not pack or stored_tokens(advertiser_id, pack=pack) is None


def exchanges(stack) -> int:
    return stack.emulator.count("token", grant_type="authorization_code")


def refreshes(stack) -> int:
    return stack.emulator.count("token", grant_type="refresh_token")


def page_of(response) -> str:
    if response.status_code in (302, 303) and "/result/" in response.headers.get("Location", ""):
        return response.headers["Location"].rsplit("/", 1)[-1]
    text = response.text
    return text.split('data-page="', 1)[1].split('"', 1)[0] if 'data-page="' in text else f"<{response.status_code}>"


class Tab:
    """One browser tab that opened ``link`` and clicked Allow (or Cancel) at Amazon; its callback
    is not followed until ``finish``."""

    def __init__(self, stack, browser, link: str, decision: str = "allow") -> None:
        self.browser = browser
        connect = browser.get(link)
        assert connect.status_code == 302, page_of(connect)
        authorize = connect.headers["Location"]
        remember(parse_qs(urlsplit(authorize).query)["state"][0])
        answer = browser.click(browser.get(authorize), "allow" if decision == "allow" else "deny")
        self.callback_url = answer.headers["Location"]
        remember(*parse_qs(urlsplit(self.callback_url).query).get("code", []))

    def finish(self):
        """The callback, and the page it leads to (its key)."""
        answer = self.browser.get(self.callback_url)
        if answer.status_code == 303:
            return answer.headers["Location"].rsplit("/", 1)[-1]
        return page_of(answer)


MADE: list[str] = []  # advertisers of this module: their time-travelled profiles are removed


def invite(stack) -> tuple[str, str]:
    advertiser_id, link = stack.invite()
    remember(link.rsplit("/", 1)[-1])
    MADE.append(advertiser_id)
    return advertiser_id, link


def reinvite(stack, advertiser_id: str) -> str:
    _adv, token = wiring.onboarding().reinvite(advertiser_id)
    remember(token)
    return f"{stack.base_url}/connect/{token}"


def at_once(*actions):
    """Run the actions in threads released together; return their results in order."""
    results: list = [None] * len(actions)
    barrier = threading.Barrier(len(actions))

    def run(i, action):
        barrier.wait()
        try:
            results[i] = action()
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.fixture
def during_exchange(monkeypatch):
    """``during_exchange(action)``: run ``action`` inside the callback's code exchange, after LwA
    answered and before anything is stored (the widest window a racing command can hit)."""

    def install(action):
        lwa = wiring.lwa_client()
        real = lwa.exchange_code

        def exchange(*args, **kwargs):
            tokens = real(*args, **kwargs)
            action()
            return tokens

        monkeypatch.setattr(lwa, "exchange_code", exchange)

    return install


# --- finding 1: two states of one link --------------------------------------------------------------
def test_two_tabs_of_one_link_complete_once_in_sequence(stack, browser):
    advertiser_id, link = invite(stack)
    first, second = Tab(stack, browser(), link), Tab(stack, browser(), link)
    assert first.finish() == "connected"
    grant = boto3.client("secretsmanager").get_secret_value(SecretId=f"{SECRET_PREFIX}refresh/{advertiser_id}")["VersionId"]
    assert second.finish() == "invitation_used"
    assert exchanges(stack) == 1  # the second tab's code was never sent to LwA
    current = boto3.client("secretsmanager").get_secret_value(SecretId=f"{SECRET_PREFIX}refresh/{advertiser_id}")
    assert current["VersionId"] == grant  # the first grant was not replaced
    assert advertiser(advertiser_id)["status"] == "connected"


def test_two_tabs_of_one_link_complete_once_at_once(stack, browser):
    advertiser_id, link = invite(stack)
    stack.emulator.fault("token", "latency", latency_ms=300)  # both reach the claim while one exchanges
    tabs = [Tab(stack, browser(), link) for _ in range(2)]
    outcomes = at_once(*(t.finish for t in tabs))
    assert sorted(outcomes) in (["connected", "in_progress"], ["connected", "invitation_used"]), outcomes
    assert exchanges(stack) == 1
    assert advertiser(advertiser_id)["status"] == "connected" and secrets_of(advertiser_id) == {"refresh", "access"}


def test_a_tab_whose_attempt_failed_lets_the_other_tab_finish(stack, browser):
    """The claim is let go when the exchange fails: the same link can be retried."""
    advertiser_id, link = invite(stack)
    first, second = Tab(stack, browser(), link), Tab(stack, browser(), link)
    stack.emulator.fault("token", "5xx", times=10)
    assert first.finish() == "retry"
    stack.emulator.clear_faults()
    assert second.finish() == "connected"
    assert advertiser(advertiser_id)["status"] == "connected"


# --- finding 2: reinvite kills the old link and its states -------------------------------------------
def test_reinvite_kills_the_old_link_and_its_open_states(stack, browser):
    advertiser_id, old_link = invite(stack)
    stale = Tab(stack, browser(), old_link)  # opened before the reinvite
    new_link = reinvite(stack, advertiser_id)
    assert page_of(browser().get(old_link)) == "invitation_replaced"
    before = exchanges(stack)
    assert stale.finish() == "invitation_replaced"
    assert exchanges(stack) == before and not secrets_of(advertiser_id)
    assert Tab(stack, browser(), new_link).finish() == "connected"
    assert int(advertiser(advertiser_id)["generation"]) == 2


def test_callback_and_reinvite_in_both_orders_and_at_once(stack, browser, during_exchange):
    # callback first: connected; the reinvite then replaces the link, the grant keeps serving
    advertiser_id, link = invite(stack)
    assert Tab(stack, browser(), link).finish() == "connected"
    reinvite(stack, advertiser_id)
    adv = advertiser(advertiser_id)
    assert adv["status"] == "connected" and adv["reconsent_pending"] is True and secrets_of(advertiser_id) == {"refresh", "access"}
    # reinvite first: the old tab is dead, no exchange
    advertiser_id, link = invite(stack)
    tab = Tab(stack, browser(), link)
    reinvite(stack, advertiser_id)
    before = exchanges(stack)
    assert tab.finish() == "invitation_replaced" and exchanges(stack) == before and not secrets_of(advertiser_id)
    # at once: the reinvite lands during the exchange; the flow's grant is taken back
    advertiser_id, link = invite(stack)
    tab = Tab(stack, browser(), link)
    during_exchange(lambda: reinvite(stack, advertiser_id))
    assert tab.finish() == "invitation_replaced"
    adv = advertiser(advertiser_id)
    assert adv["status"] == "invited" and int(adv["generation"]) == 2 and not secrets_of(advertiser_id)


def test_a_reinvite_racing_a_reconsent_completion_restores_the_working_grant(stack, browser, during_exchange):
    """A connected advertiser completes a re-consent link while ops reinvite: the new grant loses
    and the previous one is current again (it still works), nothing else is lost."""
    advertiser_id, link = invite(stack)
    assert Tab(stack, browser(), link).finish() == "connected"
    sm = boto3.client("secretsmanager")
    old_refresh = sm.get_secret_value(SecretId=f"{SECRET_PREFIX}refresh/{advertiser_id}")["SecretString"]
    old_access = sm.get_secret_value(SecretId=f"{SECRET_PREFIX}access/{advertiser_id}")["SecretString"]
    remember(json.loads(old_refresh)["refresh_token"], json.loads(old_access)["access_token"])
    tab = Tab(stack, browser(), reinvite(stack, advertiser_id))
    during_exchange(lambda: reinvite(stack, advertiser_id))
    assert tab.finish() == "invitation_replaced"
    assert json.loads(sm.get_secret_value(SecretId=f"{SECRET_PREFIX}refresh/{advertiser_id}")["SecretString"])[
        "refresh_token"] == json.loads(old_refresh)["refresh_token"]
    assert sm.get_secret_value(SecretId=f"{SECRET_PREFIX}access/{advertiser_id}")["SecretString"] == old_access
    assert advertiser(advertiser_id)["status"] == "connected"
    assert wiring.refresher().refresh(advertiser_id, force=True).outcome == "refreshed"  # the old grant works


# --- finding 3 and 5: revoke and cancel kill links and states; callbacks racing them ------------------
def test_revoke_kills_open_links_and_live_states(stack, browser):
    advertiser_id, link = invite(stack)
    stale = Tab(stack, browser(), link)
    wiring.refresher().revoke(advertiser_id)
    assert page_of(browser().get(link)) == "invitation_replaced"
    before = exchanges(stack)
    assert stale.finish() == "invitation_replaced"
    assert exchanges(stack) == before
    assert advertiser(advertiser_id)["status"] == "revoked" and no_tokens(advertiser_id)


def test_callback_and_revoke_in_both_orders_and_at_once(stack, browser, during_exchange):
    # callback, then revoke
    advertiser_id, link = invite(stack)
    assert Tab(stack, browser(), link).finish() == "connected"
    wiring.refresher().revoke(advertiser_id)
    assert advertiser(advertiser_id)["status"] == "revoked" and no_tokens(advertiser_id)
    # revoke during the exchange (after LwA answered): nothing stays
    advertiser_id, link = invite(stack)
    tab = Tab(stack, browser(), link)
    during_exchange(lambda: wiring.refresher().revoke(advertiser_id))
    assert tab.finish() == "invitation_replaced"
    adv = advertiser(advertiser_id)
    assert adv["status"] == "revoked" and "due_pk" not in adv and no_tokens(advertiser_id)
    clear_cache()
    with pytest.raises(NeedsReauthorization):
        get_access_token(advertiser_id=advertiser_id)


def test_callback_and_revoke_released_together_always_end_revoked_without_tokens(stack, browser):
    for _ in range(3):
        advertiser_id, link = invite(stack)
        tab = Tab(stack, browser(), link)
        stack.emulator.fault("token", "latency", latency_ms=150, times=1)
        outcome, _ = at_once(tab.finish, lambda: wiring.refresher().revoke(advertiser_id))
        assert outcome in ("connected", "invitation_replaced")
        assert advertiser(advertiser_id)["status"] == "revoked" and no_tokens(advertiser_id)


def test_cancel_kills_the_link_of_an_invitation_sent_to_the_wrong_address(stack, browser):
    advertiser_id, link = invite(stack)
    stale = Tab(stack, browser(), link)
    adv = wiring.onboarding().cancel(advertiser_id)
    assert adv.status.value == "cancelled"
    assert page_of(browser().get(link)) == "invitation_replaced"
    before = exchanges(stack)
    assert stale.finish() == "invitation_replaced" and exchanges(stack) == before
    assert not secrets_of(advertiser_id) and advertiser(advertiser_id)["status"] == "cancelled"
    # sent again (to the right address): a new link of the next generation connects
    assert Tab(stack, browser(), reinvite(stack, advertiser_id)).finish() == "connected"
    assert int(advertiser(advertiser_id)["generation"]) == 3


def test_a_stale_tabs_decline_or_failure_never_overwrites_revoked_or_needs_reauth(stack, browser):
    advertiser_id, link = invite(stack)
    declining = Tab(stack, browser(), link, decision="deny")
    wiring.refresher().revoke(advertiser_id)
    assert declining.finish() == "invitation_replaced"
    assert advertiser(advertiser_id)["status"] == "revoked"
    # needs_reauth (set by the refresher) with a reinvite link open: a decline there leaves it
    advertiser_id, link = invite(stack)
    assert Tab(stack, browser(), link).finish() == "connected"
    table().update_item(Key=schema.advertiser_key(advertiser_id), UpdateExpression="SET #s = :s",
                        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": "needs_reauth"})
    declining = Tab(stack, browser(), reinvite(stack, advertiser_id), decision="deny")
    assert declining.finish() == "declined"
    assert advertiser(advertiser_id)["status"] == "needs_reauth"
    # a stale tab's failure (LwA sent an error back) after a revoke: no downgrade either
    advertiser_id, link = invite(stack)
    failing = Tab(stack, browser(), link)
    wiring.refresher().revoke(advertiser_id)
    state = parse_qs(urlsplit(failing.callback_url).query)["state"][0]
    answer = failing.browser.get(f"{stack.base_url}/callback?error=server_error&state={state}")
    assert page_of(answer) == "invitation_replaced" and advertiser(advertiser_id)["status"] == "revoked"


# --- finding 4: a refresh racing a revoke -----------------------------------------------------------
def test_refresh_and_revoke_in_both_orders_and_inside_the_refresh(stack, browser, monkeypatch):
    # revoke first: the refresh makes no LwA call
    advertiser_id, link = invite(stack)
    assert Tab(stack, browser(), link).finish() == "connected"
    wiring.refresher().revoke(advertiser_id)
    before = refreshes(stack)
    assert wiring.refresher().refresh(advertiser_id, force=True).outcome == "not_connected"
    assert refreshes(stack) == before and no_tokens(advertiser_id)
    # refresh first, then revoke
    advertiser_id, link = invite(stack)
    assert Tab(stack, browser(), link).finish() == "connected"
    assert wiring.refresher().refresh(advertiser_id, force=True).outcome == "refreshed"
    wiring.refresher().revoke(advertiser_id)
    assert no_tokens(advertiser_id)
    # revoke inside the refresh, in each window: after LwA answered, and after the lease check
    for window in ("lwa", "lease"):
        advertiser_id, link = invite(stack)
        assert Tab(stack, browser(), link).finish() == "connected"
        refresher = wiring.refresher()
        target, name = (refresher.lwa, "refresh") if window == "lwa" else (refresher.store, "hold_lease")
        real = getattr(target, name)

        def racing(*args, real=real, advertiser_id=advertiser_id, **kwargs):
            answer = real(*args, **kwargs)
            monkeypatch.undo()
            refresher.revoke(advertiser_id)
            return answer

        monkeypatch.setattr(target, name, racing)
        result = refresher.refresh(advertiser_id, force=True)
        assert result.outcome in ("superseded", "not_connected"), result
        assert advertiser(advertiser_id)["status"] == "revoked"
        assert no_tokens(advertiser_id), f"the refresh brought a secret back ({window})"
        clear_cache()
        with pytest.raises(NeedsReauthorization):
            get_access_token(advertiser_id=advertiser_id)


def test_a_revoke_inside_a_pack_members_refresh_leaves_no_token_in_the_pack(stack, browser, monkeypatch):
    """The pack job's refresh of a member, revoked after LwA answered: the job's write of the pack
    must not bring its entry back."""
    advertiser_id, link = invite(stack)
    assert Tab(stack, browser(), link).finish() == "connected"
    pack = into_a_new_pack(advertiser_id)
    refresher = wiring.refresher()
    real = refresher.lwa.refresh

    def racing(*args, **kwargs):
        answer = real(*args, **kwargs)
        monkeypatch.undo()
        refresher.revoke(advertiser_id)
        return answer

    monkeypatch.setattr(refresher.lwa, "refresh", racing)
    result = refresher.refresh(advertiser_id, force=True)
    assert result.outcome in ("superseded", "not_connected"), result
    assert advertiser(advertiser_id)["status"] == "revoked"
    assert no_tokens(advertiser_id, pack), "the pack job brought a token back"
    clear_cache()
    with pytest.raises(NeedsReauthorization):
        get_access_token(advertiser_id=advertiser_id)


def test_refresh_and_revoke_released_together(stack, browser):
    advertiser_id, link = invite(stack)
    assert Tab(stack, browser(), link).finish() == "connected"
    stack.emulator.fault("token", "latency", latency_ms=100, times=1)
    at_once(lambda: wiring.refresher().refresh(advertiser_id, force=True), lambda: wiring.refresher().revoke(advertiser_id))
    assert advertiser(advertiser_id)["status"] == "revoked" and no_tokens(advertiser_id)


# --- finding 7: caps per invitation -----------------------------------------------------------------
def test_sixty_flows_from_one_link_are_capped(stack, browser):
    _advertiser_id, link = invite(stack)
    answers = [browser().get(link) for _ in range(60)]
    started = [a for a in answers if a.status_code == 302]
    capped = [a for a in answers if page_of(a) == "too_many_attempts"]
    assert len(started) == wiring.get_settings().max_flows_per_window == 10 and len(capped) == 50
    for a in started:
        remember(parse_qs(urlsplit(a.headers["Location"]).query)["state"][0])
    items = table().scan()["Items"]  # test-only inspection
    states = [i for i in items if i["pk"].startswith("STATE#") and i["invitation_hash"] == _invitation_hash(link)]
    assert len(states) == 10


def _invitation_hash(link: str) -> str:
    from adsauth import oauth

    return oauth.digest(link.rsplit("/", 1)[-1])


def test_twenty_made_up_codes_on_one_invitation_cost_at_most_the_cap_in_token_calls(stack, browser):
    _advertiser_id, link = invite(stack)
    before, pages = exchanges(stack), []
    for i in range(20):
        b = browser()
        connect = b.get(link)
        if connect.status_code != 302:
            pages.append(page_of(connect))
            continue
        state = parse_qs(urlsplit(connect.headers["Location"]).query)["state"][0]
        remember(state)
        pages.append(page_of(b.get(f"{stack.base_url}/callback?code=MadeUpCode{i:04d}xyz&state={state}")))
    cap = wiring.get_settings().max_token_calls_per_window
    assert exchanges(stack) - before == cap
    assert pages.count("retry") == cap and "too_many_attempts" in pages
    assert set(pages) <= {"retry", "too_many_attempts"}


# --- re-consent: refresh vs re-consent, two re-consents, no gap ---------------------------------------
@pytest.fixture
def aged(stack, emulator_clock):
    """Move the app's clock (handlers, refresher, client) with the emulator's."""
    from adsauth import client

    wiring.clock = emulator_clock
    client._clock = emulator_clock
    wiring.refresher.cache_clear()

    def travel(seconds: float) -> None:
        emulator_clock.offset += seconds

    yield travel
    wiring.clock = time.time
    client._clock = time.time
    wiring.refresher.cache_clear()
    # profiles "seen" in the future would win every later advertiser-by-profile lookup (all test
    # advertisers share the emulator's user), and their deadlines would sit in the due index
    for advertiser_id in MADE:
        for profile in wiring.store().list_profiles(advertiser_id):
            table().delete_item(Key=schema.profile_key(advertiser_id, profile.region.value, profile.profile_id))
        table().update_item(Key=schema.advertiser_key(advertiser_id), UpdateExpression="REMOVE due_pk, due_sk")
    MADE.clear()


def connected_advertiser(stack, browser) -> str:
    advertiser_id, link = invite(stack)
    assert Tab(stack, browser(), link).finish() == "connected"
    return advertiser_id


def test_a_grant_gets_its_365_day_end_and_a_reconsent_at_each_lead(stack, browser, aged):
    stack.enable_email()
    try:
        advertiser_id = connected_advertiser(stack, browser)
        adv = advertiser(advertiser_id)
        assert float(adv["grant_expires_at"]) == pytest.approx(float(adv["consented_at"]) + 365 * DAY, abs=1)
        sent_before = len(stack.sent_emails())
        aged(335 * DAY + 60)  # 30 days before the end
        result = wiring.refresher().refresh(advertiser_id, force=True)
        assert result.outcome == "refreshed" and result.reconsent_lead == 30
        adv = advertiser(advertiser_id)
        assert adv["status"] == "connected" and adv["reconsent_pending"] is True and int(adv["generation"]) == 2
        mails = stack.sent_emails()[sent_before:]
        assert len(mails) == 1 and "/connect/" in mails[0].body
        remember(stack.invitation_token(mails[0]))
        # the same lead is not sent twice
        assert wiring.refresher().refresh(advertiser_id, force=True).reconsent_lead is None
        assert len(stack.sent_emails()) == sent_before + 1
    finally:
        stack.disable_email()


def reconsent_link(stack) -> str:
    token = stack.invitation_token(stack.sent_emails()[-1])
    remember(token)
    return f"{stack.base_url}/connect/{token}"


def test_completing_a_reconsent_replaces_the_grant_with_no_gap(stack, browser, aged):
    stack.enable_email()
    try:
        advertiser_id = connected_advertiser(stack, browser)
        aged(358 * DAY)  # 7 days left
        assert wiring.refresher().refresh(advertiser_id, force=True).reconsent_lead == 7
        link = reconsent_link(stack)
        tab = Tab(stack, browser(), link)
        stop, failures, reads = threading.Event(), [], []

        def read_all_the_time():
            while not stop.is_set():
                clear_cache()
                try:
                    reads.append(get_access_token(advertiser_id=advertiser_id))
                except Exception as exc:  # noqa: BLE001
                    failures.append(type(exc).__name__)

        reader = threading.Thread(target=read_all_the_time)
        reader.start()
        try:
            assert tab.finish() == "connected"
        finally:
            stop.set()
            reader.join(30)
        remember(*reads)
        assert reads and failures == []  # the old token served until the new one was stored
        adv = advertiser(advertiser_id)
        assert adv["reconsent_pending"] is False and float(adv["grant_expires_at"]) > time.time() + 364 * DAY
    finally:
        stack.disable_email()


def test_refresh_and_reconsent_completion_in_both_orders_and_at_once(stack, browser, aged):
    advertiser_id = connected_advertiser(stack, browser)
    for order in ("refresh_first", "complete_first", "at_once"):
        tab = Tab(stack, browser(), reinvite(stack, advertiser_id))
        refresh = lambda: wiring.refresher().refresh(advertiser_id, force=True)  # noqa: E731
        if order == "refresh_first":
            refresh()
            assert tab.finish() == "connected"
        elif order == "complete_first":
            assert tab.finish() == "connected"
            assert refresh().outcome == "refreshed"
        else:
            outcome, _ = at_once(tab.finish, refresh)
            assert outcome == "connected"
        adv = advertiser(advertiser_id)
        assert adv["status"] == "connected" and adv["reconsent_pending"] is False
        assert secrets_of(advertiser_id) == {"refresh", "access"}
        assert wiring.refresher().refresh(advertiser_id, force=True).outcome == "refreshed"  # the stored grant works


def test_two_reconsents_the_older_link_dies(stack, browser, aged):
    stack.enable_email()
    try:
        advertiser_id = connected_advertiser(stack, browser)
        aged(335 * DAY + 60)
        assert wiring.refresher().refresh(advertiser_id, force=True).reconsent_lead == 30
        first = reconsent_link(stack)
        aged(23 * DAY)
        assert wiring.refresher().refresh(advertiser_id, force=True).reconsent_lead == 7
        second = reconsent_link(stack)
        assert page_of(browser().get(first)) == "invitation_replaced"
        assert Tab(stack, browser(), second).finish() == "connected"
        assert int(advertiser(advertiser_id)["generation"]) == 3
    finally:
        stack.disable_email()


def test_a_reconsent_waits_while_the_advertiser_is_completing_the_current_link(stack, browser, aged, during_exchange):
    """The scheduled re-consent yields to a flow holding the claim (the advertiser clicked Allow
    on the 30-day link as the 7-day one came due): that completion is not thrown away."""
    stack.enable_email()
    try:
        advertiser_id = connected_advertiser(stack, browser)
        aged(335 * DAY + 60)
        assert wiring.refresher().refresh(advertiser_id, force=True).reconsent_lead == 30
        link = reconsent_link(stack)
        aged(23 * DAY)  # the 7-day lead is due; the 30-day link still works (until the grant ends)
        tab = Tab(stack, browser(), link)
        leads = []
        during_exchange(lambda: leads.append(wiring.refresher().refresh(advertiser_id, force=True).reconsent_lead))
        assert tab.finish() == "connected" and leads == [None]
        assert advertiser(advertiser_id)["reconsent_pending"] is False
    finally:
        stack.disable_email()


def test_at_the_grant_end_without_reconsent_the_advertiser_needs_reauth_before_lwa_refuses(stack, browser, aged):
    stack.emulator.grant_lifetime_seconds = 365 * DAY  # Amazon: refreshes fail after the end
    advertiser_id = connected_advertiser(stack, browser)
    aged(365 * DAY - 600)  # 10 minutes before the end: inside the refresh lead
    before = refreshes(stack)
    result = wiring.refresher().refresh(advertiser_id)
    assert (result.outcome, result.reason) == ("needs_reauth", "grant_expired")
    assert refreshes(stack) == before  # no call that LwA would refuse
    adv = advertiser(advertiser_id)
    assert adv["status"] == "needs_reauth" and adv["status_reason"] == "grant_expired" and "due_pk" not in adv
    aged(3600)  # the last access token has run out
    clear_cache()
    with pytest.raises(NeedsReauthorization):
        get_access_token(advertiser_id=advertiser_id)


def test_refresh_token_expires_in_from_lwa_wins(stack, browser):
    stack.emulator.grant_lifetime_seconds = 90 * DAY
    stack.emulator.send_refresh_token_expires_in = True
    advertiser_id = connected_advertiser(stack, browser)
    adv = advertiser(advertiser_id)
    assert adv["grant_expiry_basis"] == "token_response"
    assert float(adv["grant_expires_at"]) == pytest.approx(time.time() + 90 * DAY, abs=30)


# --- lifecycle events through EventBridge to a consumer's rule (SQS target) ---------------------------
def test_lifecycle_events_reach_a_consumer_rule_without_secrets(stack, browser):
    stack.received_events()  # what earlier tests left
    advertiser_id, link = invite(stack)
    assert Tab(stack, browser(), link).finish() == "connected"
    declined_id, declined_link = invite(stack)
    assert Tab(stack, browser(), declined_link, decision="deny").finish() == "declined"
    wiring.refresher().revoke(advertiser_id)
    received = stack.received_events(wait_seconds=1)
    mine = [(e["detail-type"], e["detail"]["advertiserId"]) for e in received if e["source"] == "adsauth"]
    assert [t for t, a in mine if a == advertiser_id] == [
        "AdvertiserInvited", "AdvertiserConnected", "ProfilesChanged", "AdvertiserRevoked"]
    assert [t for t, a in mine if a == declined_id] == ["AdvertiserInvited", "AdvertiserDeclined"]
    text = json.dumps(received)
    assert "Atzr|" not in text and "Atza|" not in text and "@" not in text and "/connect/" not in text
    ids = [e["detail"]["eventId"] for e in received]
    assert len(ids) == len(set(ids))


def test_events_left_by_a_failed_publish_are_sent_by_the_next_dispatcher_run(stack, browser, monkeypatch):
    stack.received_events()
    publisher = wiring.publisher()
    monkeypatch.setattr(publisher, "publish", lambda events: (_ for _ in ()).throw(ConnectionError("down")))
    advertiser_id, _link = invite(stack)
    assert stack.received_events(wait_seconds=1) == []  # not published: kept in the outbox
    monkeypatch.undo()
    stack.scheduler().dispatch()  # the scheduled run drains the outbox
    received = [e for e in stack.received_events(wait_seconds=1) if e["detail"]["advertiserId"] == advertiser_id]
    assert [e["detail-type"] for e in received] == ["AdvertiserInvited"]
    assert wiring.store().pending_events() == []


def test_callback_and_reinvite_released_together(stack, browser):
    for _ in range(3):
        advertiser_id, link = invite(stack)
        tab = Tab(stack, browser(), link)
        stack.emulator.fault("token", "latency", latency_ms=150, times=1)
        outcome, new_link = at_once(tab.finish, lambda: reinvite(stack, advertiser_id))
        adv = advertiser(advertiser_id)
        assert int(adv["generation"]) == 2
        if outcome == "connected":  # completed before the reinvite: the grant serves, a new link is out
            assert adv["status"] == "connected" and adv["reconsent_pending"] is True
            assert secrets_of(advertiser_id) == {"refresh", "access"}
        else:  # the reinvite won: nothing of the old flow stayed
            assert outcome == "invitation_replaced" and adv["status"] == "invited" and not secrets_of(advertiser_id)
        assert Tab(stack, browser(), new_link).finish() == "connected"


def test_two_reconsent_runs_at_once_send_one_invitation(stack, browser, aged):
    stack.enable_email()
    try:
        advertiser_id = connected_advertiser(stack, browser)
        aged(335 * DAY + 60)
        sent = len(stack.sent_emails())
        results = at_once(*(lambda: wiring.refresher().refresh(advertiser_id, force=True) for _ in range(2)))
        leads = sorted(str(getattr(r, "reconsent_lead", r)) for r in results)
        assert leads == ["30", "None"], results  # the other one found the lease held, or the lead sent
        assert len(stack.sent_emails()) == sent + 1 and int(advertiser(advertiser_id)["generation"]) == 2
    finally:
        stack.disable_email()


@pytest.mark.parametrize("window", ["exchange", "stored"])
def test_a_flow_that_lost_its_commit_never_takes_back_a_newer_grant(stack, browser, during_exchange, monkeypatch, window):
    """Flow A is exchanging (or has just stored its tokens); ops reinvite and the advertiser
    completes the new link (B) first; A's commit then fails: A stores nothing (exchange), or
    takes back only what it wrote by putting B's versions back (stored). B's grant stays."""
    advertiser_id, link = invite(stack)
    stale = Tab(stack, browser(), link)
    done = []

    def newer_grant_completes():
        if done:
            return  # B runs through the same patched code
        done.append(True)
        assert Tab(stack, browser(), reinvite(stack, advertiser_id)).finish() == "connected"

    if window == "exchange":
        during_exchange(newer_grant_completes)
    else:
        vault = wiring.vault()
        real = vault.put_grant

        def put_grant(*args, **kwargs):
            receipt = real(*args, **kwargs)
            newer_grant_completes()
            return receipt

        monkeypatch.setattr(vault, "put_grant", put_grant)
    assert stale.finish() == "invitation_replaced"
    adv = advertiser(advertiser_id)
    assert adv["status"] == "connected" and int(adv["generation"]) == 2
    assert secrets_of(advertiser_id) == {"refresh", "access"}
    assert wiring.refresher().refresh(advertiser_id, force=True).outcome == "refreshed"  # B's grant works


def test_an_advertiser_connected_before_grants_were_recorded_gets_its_grant_on_the_next_refresh(stack, browser):
    advertiser_id = connected_advertiser(stack, browser)
    table().update_item(Key=schema.advertiser_key(advertiser_id),
                        UpdateExpression="REMOVE consented_at, grant_expires_at, grant_expiry_basis, generation")
    assert wiring.refresher().refresh(advertiser_id, force=True).outcome == "refreshed"
    adv = advertiser(advertiser_id)
    assert adv["grant_expiry_basis"] == "consent"
    assert float(adv["grant_expires_at"]) == pytest.approx(float(adv["connected_at"]) + 365 * DAY, abs=1)
