"""The refresher domain (dispatcher and worker logic) against in-memory fakes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import pytest

from local.simulation import seed_connected

from adsauth.errors import (
    AdvertiserUnknown,
    ClientInvalid,
    LwaUnavailable,
    RefreshTokenSuperseded,
    RefreshTokenUnsaved,
)
from adsauth.models import Advertiser, AdvertiserStatus, TokenSet
from adsauth.refresher import PLATFORM_PAUSE_SECONDS, Refresher
from adsauth.regions import Region
from adsauth.settings import SettingsError
from tests.unit.fakes import (
    Clock,
    FakeAds,
    FakeLwa,
    FakeNotifier,
    FakeQueue,
    FakeStore,
    FakeVault,
    make_settings,
    profile,
)

LEAD = 720


@dataclass
class World:
    clock: Clock
    store: FakeStore
    vault: FakeVault
    lwa: FakeLwa
    ads: FakeAds
    notifier: FakeNotifier
    queue: FakeQueue
    refresher: Refresher

    def connect(self, advertiser_id: str = "adv-1", *, expires_in: float = 3600, pending=()) -> str:
        now = self.clock()
        tokens = self.lwa.grant(expires_at=now + expires_in)
        seed_connected(self.store, self.vault, advertiser_id, tokens, now, region=Region.EU, name="Acme Outdoor")
        self.store.advertisers[advertiser_id] = replace(self.store.advertisers[advertiser_id], pending_regions=tuple(pending))
        self.store.set_deadline(advertiser_id, self.store.schedule.deadline(tokens.expires_at, now, pending))
        found = {r: self.ads.by_region[r] for r in Region if r not in pending}
        self.store.merge_profiles(advertiser_id, found, now)
        self.vault.order.clear()
        return advertiser_id

    def advertiser(self, advertiser_id: str = "adv-1") -> Advertiser:
        return self.store.get_advertiser(advertiser_id)

    def events(self, advertiser_id: str = "adv-1") -> list[str]:
        return [e.event for e in reversed(self.store.list_events(advertiser_id, 100))]


@pytest.fixture
def world() -> World:
    clock = Clock()
    settings = make_settings()
    store, vault, lwa, ads = FakeStore(settings.due_schedule), FakeVault(), FakeLwa(clock), FakeAds()
    notifier, queue = FakeNotifier(), FakeQueue()
    refresher = Refresher(settings=settings, store=store, vault=vault, lwa=lwa, ads=ads,
                          notifier=notifier, queue=queue, clock=clock, sleep=lambda _s: None)
    return World(clock, store, vault, lwa, ads, notifier, queue, refresher)


# --- the worker ------------------------------------------------------------------------------------
def test_a_due_token_is_refreshed_once_and_its_deadline_moves(world):
    world.connect(expires_in=LEAD - 60)
    old_access = world.vault.access["adv-1"]
    result = world.refresher.refresh("adv-1")
    assert result.outcome == "refreshed" and not result.rotated
    assert len(world.lwa.refresh_calls) == 1 and world.lwa.refresh_calls == [Region.EU]  # the advertiser's region
    access, expires_at = world.vault.access["adv-1"]
    assert access != old_access[0] and expires_at == world.clock() + 3600
    adv = world.advertiser()
    assert adv.token_expires_at == expires_at and adv.last_refresh_at == world.clock()
    assert world.store.due["adv-1"] == expires_at  # the next deadline
    assert world.store.leases == {}  # released
    assert world.events() == ["refreshed"]
    assert world.vault.order == ["access"]  # not rotated: the refresh token is not rewritten


def test_a_fresh_token_makes_no_lwa_call_unless_forced(world):
    world.connect(expires_in=3600)
    assert world.refresher.refresh("adv-1").outcome == "fresh"
    assert world.lwa.refresh_calls == []
    assert world.refresher.refresh("adv-1", force=True).outcome == "refreshed"
    assert len(world.lwa.refresh_calls) == 1
    assert world.store.list_events("adv-1", 1)[0].cause == "forced"


def test_a_rotated_refresh_token_is_persisted_before_the_access_token(world):
    world.connect(expires_in=60)
    old_refresh = world.vault.refresh["adv-1"]
    world.lwa.rotate = True
    result = world.refresher.refresh("adv-1")
    assert result.outcome == "refreshed" and result.rotated
    assert world.vault.order == ["refresh", "access"]
    assert world.vault.refresh["adv-1"] != old_refresh
    assert world.events() == ["rotated", "refreshed"]
    # the next refresh uses the new token (the old one no longer works at LwA)
    world.clock.advance(3600 - LEAD + 1)
    assert world.refresher.refresh("adv-1").outcome == "refreshed"


@pytest.mark.parametrize("rotate", [True, False])
def test_a_stale_worker_never_overwrites_a_newer_refresh_token(world, rotate):
    """Worker A stalls inside its LwA call past its lease; worker B refreshes meanwhile."""
    world.connect(expires_in=60)
    world.lwa.rotate = rotate
    results = {}
    other = Refresher(settings=world.refresher.settings, store=world.store, vault=world.vault, lwa=world.lwa,
                      ads=world.ads, notifier=world.notifier, queue=world.queue, clock=world.clock)  # elsewhere

    def stall_first_call():
        if "b" not in results:
            world.lwa.before_refresh = None
            world.clock.advance(world.refresher.settings.refresh_lease_seconds + 1)  # A's lease expires
            results["b"] = other.refresh("adv-1")

    world.lwa.before_refresh = stall_first_call
    results["a"] = world.refresher.refresh("adv-1")
    assert results["b"].outcome == "refreshed" and results["b"].rotated is rotate
    b_token, b_access = world.vault.refresh["adv-1"], world.vault.access["adv-1"]
    # rotated: LwA refuses A's old token, which is not a revocation; not rotated: A lost its lease
    assert results["a"].outcome == "superseded"
    assert results["a"].reason == ("refresh_token_superseded" if rotate else "lease_lost")
    assert world.vault.access["adv-1"] == b_access
    assert world.vault.refresh["adv-1"] == b_token
    assert world.advertiser().status is AdvertiserStatus.CONNECTED and world.notifier.alerts == []


def test_a_stale_writer_cannot_replace_a_version_that_already_has_a_successor(world):
    world.connect()
    read = world.vault.get_refresh_token("adv-1")
    world.vault.replace_refresh_token("adv-1", "Atzr|newer", 1.0, replaces=read.version, fence=2)
    with pytest.raises(RefreshTokenSuperseded):
        world.vault.replace_refresh_token("adv-1", "Atzr|older", 2.0, replaces=read.version, fence=1)
    assert world.vault.refresh["adv-1"] == "Atzr|newer"


class Flaky:
    """Wraps a method: raises ``failures`` times, then calls through."""

    def __init__(self, method, failures: int) -> None:
        self.method, self.failures, self.calls = method, failures, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError("storage down")
        return self.method(*args, **kwargs)


def test_a_rotated_token_is_saved_even_when_the_table_fails_right_after_the_lwa_call(world, monkeypatch):
    world.connect(expires_in=60)
    world.lwa.rotate = True
    monkeypatch.setattr(world.store, "hold_lease", Flaky(world.store.hold_lease, 1))
    with pytest.raises(OSError):
        world.refresher.refresh("adv-1")
    assert world.vault.order == ["refresh"]  # the new grant is stored; LwA retired the old one
    assert world.advertiser().last_refresh_error == "refresh_incomplete"
    assert world.refresher.refresh("adv-1").outcome == "refreshed"  # the redelivery uses the new token


def test_saving_a_rotated_token_is_retried_within_the_lease(world, monkeypatch):
    world.connect(expires_in=60)
    world.lwa.rotate = True
    flaky = Flaky(world.vault.replace_refresh_token, 2)
    monkeypatch.setattr(world.vault, "replace_refresh_token", flaky)
    assert world.refresher.refresh("adv-1").outcome == "refreshed" and flaky.calls == 3


def test_a_rotated_token_that_cannot_be_saved_says_so(world, monkeypatch):
    world.connect(expires_in=60)
    world.lwa.rotate = True
    monkeypatch.setattr(world.vault, "replace_refresh_token", Flaky(world.vault.replace_refresh_token, 99))
    with pytest.raises(RefreshTokenUnsaved):
        world.refresher.refresh("adv-1")
    assert world.advertiser().last_refresh_error == "refresh_token_unsaved"


def test_a_failed_table_write_after_the_refresh_is_recorded(world, monkeypatch):
    world.connect(expires_in=60)
    monkeypatch.setattr(world.store, "record_refresh", Flaky(world.store.record_refresh, 1))
    with pytest.raises(OSError):
        world.refresher.refresh("adv-1")
    assert world.advertiser().last_refresh_error == "refresh_incomplete" and world.store.leases == {}
    assert world.refresher.refresh("adv-1").outcome == "refreshed"
    assert world.advertiser().last_refresh_error == ""


def test_a_new_grant_during_a_refresh_wins(world):
    """The advertiser re-authorizes while a refresh is in flight: the consent's token stays."""
    world.connect(expires_in=60)
    world.lwa.rotate = True

    def reauthorize():
        world.lwa.before_refresh = None
        world.vault.put_grant("adv-1", TokenSet("Atza|from-consent", "Atzr|from-consent", world.clock() + 3600),
                              world.clock())

    world.lwa.before_refresh = reauthorize
    assert world.refresher.refresh("adv-1").outcome == "superseded"
    assert world.vault.refresh["adv-1"] == "Atzr|from-consent"


def test_invalid_grant_moves_the_advertiser_to_needs_reauth_and_alerts(world):
    world.connect(expires_in=60)
    world.lwa.revoke(world.vault.refresh["adv-1"])
    result = world.refresher.refresh("adv-1")
    assert result.outcome == "needs_reauth" and result.reason == "invalid_grant"
    adv = world.advertiser()
    assert adv.status is AdvertiserStatus.NEEDS_REAUTH and "adv-1" not in world.store.due
    assert world.events() == ["needs_reauth"]
    [(subject, message)] = world.notifier.alerts
    assert "adv-1" in message and "Acme Outdoor" in message and "    adsauth reinvite adv-1\n" in message
    assert world.vault.refresh["adv-1"] not in message + subject
    # no more attempts: not dispatched, and a queued job makes no LwA call
    world.clock.advance(3600)
    assert world.refresher.dispatch_due() == 0
    assert world.refresher.refresh("adv-1").outcome == "not_connected"
    assert len(world.lwa.refresh_calls) == 1


def test_a_missing_refresh_token_needs_reauth(world):
    world.connect(expires_in=60)
    world.vault.refresh.pop("adv-1")
    assert world.refresher.refresh("adv-1").reason == "refresh_token_missing"
    assert world.lwa.refresh_calls == []


def test_invalid_client_pauses_every_refresh_and_the_dispatcher(world):
    for i in range(3):
        world.connect(f"adv-{i}", expires_in=60)
    world.lwa.refresh_fail = ClientInvalid()
    assert world.refresher.refresh("adv-0").outcome == "client_invalid"
    assert [world.refresher.refresh(f"adv-{i}").outcome for i in (1, 2)] == ["paused", "paused"]
    assert len(world.lwa.refresh_calls) == 1  # the rest of the batch made no LwA call
    assert len(world.notifier.alerts) == 1 and "invalid_client" in world.notifier.alerts[0][1]
    assert world.advertiser("adv-0").last_refresh_error == "invalid_client"
    assert world.refresher.dispatch_due() == 0 and not world.queue.messages
    # the pause ends by itself; the advertisers are still due and found again
    world.lwa.refresh_fail = None
    world.clock.advance(PLATFORM_PAUSE_SECONDS + 1)
    assert world.refresher.dispatch_due() == 3


def test_invalid_client_costs_one_call_when_a_batch_runs_in_parallel(world):
    for i in range(4):
        world.connect(f"adv-{i}", expires_in=60)
    world.lwa.refresh_fail = ClientInvalid()
    world.lwa.before_refresh = lambda: time.sleep(0.05)
    barrier, outcomes = threading.Barrier(4), []

    def work(advertiser_id):
        barrier.wait()
        outcomes.append(world.refresher.refresh(advertiser_id).outcome)

    threads = [threading.Thread(target=work, args=(f"adv-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(world.lwa.refresh_calls) == 1
    assert sorted(outcomes) == ["client_invalid", "paused", "paused", "paused"]


def test_calls_run_in_parallel_once_lwa_accepted_the_client(world):
    for i in range(4):
        world.connect(f"adv-{i}", expires_in=60)
    world.refresher.refresh("adv-0")  # the probe
    running, most = [0], [0]
    lock = threading.Lock()

    def overlap():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    world.lwa.before_refresh = overlap
    threads = [threading.Thread(target=world.refresher.refresh, args=(f"adv-{i}",)) for i in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 3 and len(world.lwa.refresh_calls) == 4


def test_transient_failure_records_why_and_raises_for_redelivery(world):
    world.connect(expires_in=60)
    world.lwa.refresh_fail = LwaUnavailable()
    with pytest.raises(LwaUnavailable):
        world.refresher.refresh("adv-1")
    assert world.advertiser().last_refresh_error == "lwa_unavailable"
    assert world.store.leases == {} and world.advertiser().status is AdvertiserStatus.CONNECTED
    world.lwa.refresh_fail = None
    assert world.refresher.refresh("adv-1").outcome == "refreshed"  # the redelivery
    assert world.advertiser().last_refresh_error == ""


def test_a_held_lease_makes_the_second_worker_step_aside(world):
    world.connect(expires_in=60)
    taken = world.store.acquire_lease("adv-1", "other-worker", world.clock(), world.clock() + 120)
    assert taken is not None
    assert world.refresher.refresh("adv-1").outcome == "busy" and world.lwa.refresh_calls == []
    world.clock.advance(121)  # an abandoned lease expires
    assert world.refresher.refresh("adv-1").outcome == "refreshed"


def test_two_threads_on_one_advertiser_make_one_lwa_call(world):
    world.connect(expires_in=60)
    world.lwa.before_refresh = lambda: time.sleep(0.05)
    barrier, outcomes = threading.Barrier(2), []

    def work():
        barrier.wait()
        outcomes.append(world.refresher.refresh("adv-1").outcome)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(world.lwa.refresh_calls) == 1
    assert sorted(outcomes) in (["busy", "refreshed"], ["fresh", "refreshed"])


def test_unknown_advertiser_is_a_clear_error(world):
    with pytest.raises(AdvertiserUnknown):
        world.refresher.refresh("adv-nobody")


# --- the dispatcher --------------------------------------------------------------------------------
def test_dispatcher_queues_only_due_advertisers_in_batches_of_ten(world):
    for i in range(23):
        world.connect(f"adv-due{i:02d}", expires_in=LEAD - 1)
    for i in range(5):
        world.connect(f"adv-fresh{i}", expires_in=3600)
    world.store.advertisers["adv-invited"] = Advertiser(
        "adv-invited", "X", "x@y.example", Region.NA, AdvertiserStatus.INVITED, 0, 0)
    assert world.refresher.dispatch_due() == 23
    assert world.queue.batches == [10, 10, 3]
    assert sorted(world.queue.messages) == [f"adv-due{i:02d}" for i in range(23)]
    # queued ones are snoozed: the next minute's run does not queue them again
    world.clock.advance(60)
    assert world.refresher.dispatch_due() == 0


def test_a_snoozed_advertiser_that_was_not_refreshed_is_queued_again(world):
    world.connect(expires_in=LEAD - 1)
    assert world.refresher.dispatch_due() == 1
    world.queue.messages.clear()  # the job was lost (dead-lettered)
    world.clock.advance(world.refresher.schedule.redispatch_seconds + 1)
    assert world.refresher.dispatch_due() == 1


def test_a_duplicate_job_of_a_fresh_advertiser_repairs_its_deadline(world):
    world.connect(expires_in=LEAD - 1)
    world.refresher.dispatch_due()
    world.refresher.refresh("adv-1")
    deadline = world.store.due["adv-1"]
    assert world.refresher.refresh("adv-1").outcome == "fresh"  # the duplicate
    assert world.store.due["adv-1"] == deadline and len(world.lwa.refresh_calls) == 1


# --- profiles --------------------------------------------------------------------------------------
def test_a_failed_region_is_pending_then_retried_until_it_succeeds(world):
    world.connect(pending=(Region.FE,))
    assert world.advertiser().pending_regions == (Region.FE,)
    schedule = world.refresher.schedule
    # its own due marker: dispatched once the retry is due, long before the token is
    assert world.store.due["adv-1"] == world.clock() + schedule.pending_retry_seconds + LEAD
    world.ads.down = {Region.FE}
    world.clock.advance(schedule.pending_retry_seconds + 1)
    assert world.refresher.dispatch_due() == 1
    result = world.refresher.refresh(world.queue.messages.popleft())
    assert result.outcome == "refreshed" and result.profiles.regions_pending == ("FE",)
    assert world.store.list_events("adv-1", 1)[0].cause == "profiles"
    world.ads.down = set()
    world.ads.by_region[Region.FE] = [profile(3, Region.FE, "JP")]
    world.clock.advance(schedule.pending_retry_seconds + 1)
    result = world.refresher.refresh("adv-1")
    assert result.profiles.regions_pending == () and world.advertiser().pending_regions == ()
    assert {p.profile_id for p in world.store.list_profiles("adv-1")} == {1, 2, 3}
    # pending cleared: the next deadline is the token's again
    assert world.store.due["adv-1"] == world.advertiser().token_expires_at


def test_profiles_ride_along_with_the_token_refresh_before_they_are_due(world):
    world.connect(expires_in=3600)
    world.ads.calls.clear()
    day = world.refresher.schedule.profile_refresh_seconds
    world.ads.by_region[Region.NA] = [profile(7, Region.NA)]  # profile 1 vanished, 7 is new
    world.clock.advance(day - 2000)  # due before the next token refresh (in ~48 minutes)
    result = world.refresher.refresh("adv-1")
    assert result.profiles is not None and len(world.lwa.refresh_calls) == 1  # no extra LwA call
    by_id = {p.profile_id: p for p in world.store.list_profiles("adv-1")}
    assert by_id[1].status == "removed" and by_id[1].removed_at == world.clock()
    assert by_id[7].status == "active" and by_id[2].status == "active"


def test_profiles_on_demand(world):
    world.connect(expires_in=3600)
    result = world.refresher.refresh_profiles("adv-1")
    assert result.outcome == "refreshed" and result.profiles.regions_ok == ("NA", "EU", "FE")


# --- revoke, audit, settings -----------------------------------------------------------------------
def test_revoke_deletes_tokens_and_keeps_the_records(world):
    world.connect()
    world.refresher.revoke("adv-1")
    assert "adv-1" not in world.vault.refresh and "adv-1" not in world.vault.access
    adv = world.advertiser()
    assert adv.status is AdvertiserStatus.REVOKED and "adv-1" not in world.store.due
    assert world.events() == ["revoked"] and world.store.list_profiles("adv-1")
    with pytest.raises(AdvertiserUnknown):
        world.refresher.revoke("adv-nobody")


def test_the_audit_trail_never_holds_a_token(world):
    world.connect(expires_in=60)
    world.lwa.rotate = True
    world.refresher.refresh("adv-1")
    trail = repr(world.store.events)
    for token in (world.vault.refresh["adv-1"], world.vault.access["adv-1"][0]):
        assert token not in trail


def test_onboarding_records_the_connected_event(world):
    from adsauth.onboarding import Onboarding

    flow = Onboarding(settings=make_settings(), store=world.store, vault=world.vault, lwa=world.lwa,
                      ads=world.ads, clock=world.clock)
    adv, _link = flow.invite(name="Acme", email="a@b.example", region=Region.NA)
    assert flow.exchange_manual(advertiser_id=adv.advertiser_id, code="c", redirect_uri="https://x.example/cb",
                                region=Region.NA).outcome == "connected"
    [event] = world.store.list_events(adv.advertiser_id)
    assert (event.event, event.cause, event.at) == ("connected", "manual_exchange", world.clock())
    assert world.store.due[adv.advertiser_id] == world.advertiser(adv.advertiser_id).token_expires_at


@pytest.mark.parametrize("value", ["0", "-5", "1800", "soon"])
def test_lead_window_must_be_sane(value):
    with pytest.raises(SettingsError):
        make_settings(REFRESH_LEAD_SECONDS=value)


def test_refresher_settings_have_defaults_and_read_the_environment():
    s = make_settings()
    assert (s.refresh_lead_seconds, s.profile_refresh_seconds, s.refresh_lease_seconds) == (720, 86400, 120)
    assert s.refresh_queue_url == "" and s.alert_topic_arn == ""
    s = make_settings(REFRESH_LEAD_SECONDS="900", PROFILE_REFRESH_SECONDS="3600", REFRESH_LEASE_SECONDS="60",
                      REFRESH_QUEUE_URL="https://sqs/q", ALERT_TOPIC_ARN="arn:aws:sns:x")
    assert s.due_schedule.lead_seconds == 900 and s.due_schedule.profile_refresh_seconds == 3600
    assert (s.refresh_lease_seconds, s.refresh_queue_url, s.alert_topic_arn) == (60, "https://sqs/q", "arn:aws:sns:x")


# --- adapters and handler helpers ------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, expected",
    [('{"advertiser_id": "adv-1"}', "adv-1"), ("not json", None), ("[]", None), ('{"advertiser_id": 5}', None),
     ('{"advertiser_id": "../x"}', None), ("", None), (None, None)],
)
def test_worker_reads_only_a_well_formed_advertiser_id(body, expected):
    from adsauth.adapters.notify import job_advertiser

    assert job_advertiser(body) == expected


def test_queue_sends_batches_of_ten_and_alerts_have_a_valid_subject():
    from adsauth.adapters.notify import QueueSendFailed, SnsNotifier, SqsRefreshQueue

    class Client:
        def __init__(self, failed=0):
            self.calls, self.failed = [], failed

        def send_message_batch(self, **kwargs):
            self.calls.append(kwargs["Entries"])
            return {"Failed": [{"Id": "0"}] * self.failed}

        def publish(self, **kwargs):
            self.calls.append(kwargs)

    client = Client()
    SqsRefreshQueue(client=client, queue_url="q").send([f"adv-{i}" for i in range(23)])
    assert [len(c) for c in client.calls] == [10, 10, 3]
    assert client.calls[2][0]["MessageBody"] == '{"advertiser_id": "adv-20"}'
    with pytest.raises(QueueSendFailed):
        SqsRefreshQueue(client=Client(failed=1), queue_url="q").send(["adv-1"])
    SnsNotifier(client=client, topic_arn="arn").alert("Zoë's shop\nneeds " + "x" * 200, "body")
    subject = client.calls[-1]["Subject"]
    assert len(subject) == 100 and subject.isascii() and "\n" not in subject
