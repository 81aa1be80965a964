"""The dispatcher run's lease (``Refresher.dispatch_due``) against the in-memory table: every pair
of transitions of its docstring's table, overlapping runs in both orders, truly concurrent runs,
a run that outlives its lease, a run that crashed holding it, and the platform pause."""

from __future__ import annotations

import threading

import pytest

from adsauth.dispatch import DISPATCH_LEASE_SECONDS, SQS_BATCH
from adsauth.refresher import Refresher
from local.memory import MemoryStore, MemoryVault
from local.simulation import MemoryNotifier, MemoryQueue, seed_connected
from tests.overlap import overlapping_runs
from tests.unit.fakes import Clock, FakeLwa, make_settings

DUE = 25  # three SQS batches


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.settings = make_settings()
        self.store, self.queue = MemoryStore(self.settings.due_schedule), MemoryQueue()
        vault, lwa = MemoryVault(), FakeLwa(self.clock)
        for i in range(DUE):
            advertiser_id = f"adv-due{i:02d}"
            seed_connected(self.store, vault, advertiser_id, lwa.grant(expires_at=self.clock() + 300), self.clock())
            self.store.set_deadline(advertiser_id, self.clock() - 1)
        self.refresher = Refresher(settings=self.settings, store=self.store, vault=vault, lwa=lwa, ads=None,
                                   notifier=MemoryNotifier(), queue=self.queue, clock=self.clock)

    def queued(self) -> list[str]:
        return list(self.queue.messages)


@pytest.fixture
def world() -> World:
    return World()


def each_once(world: World) -> bool:
    return sorted(world.queued()) == [f"adv-due{i:02d}" for i in range(DUE)]


# --- the store's transitions (the docstring's table, row by row) ----------------------------------
def test_absent_lease_is_taken_and_released_by_its_owner_only():
    store, now = MemoryStore(), 1000.0
    assert store.release_dispatch_lease("a") is False  # absent: release refused, nothing changes
    assert store.dispatch_lease is None
    assert store.acquire_dispatch_lease("a", now, now + 60) is True
    assert store.acquire_dispatch_lease("b", now + 59, now + 119) is False  # unexpired: refused
    assert store.release_dispatch_lease("b") is False  # a non-owner's release is refused
    assert store.dispatch_lease == ("a", now + 60)
    assert store.acquire_dispatch_lease("a", now + 1, now + 61) is True  # its own retry: new expiry
    assert store.dispatch_lease == ("a", now + 61)
    assert store.release_dispatch_lease("a") is True
    assert store.dispatch_lease is None


def test_a_lapsed_lease_goes_to_the_next_run_and_the_lapsed_owner_cannot_end_it():
    store, now = MemoryStore(), 1000.0
    assert store.acquire_dispatch_lease("a", now, now + 60)
    assert store.acquire_dispatch_lease("b", now + 60, now + 120) is True  # lapsed at its expiry
    assert store.release_dispatch_lease("a") is False
    assert store.dispatch_lease == ("b", now + 120)


# --- two runs -------------------------------------------------------------------------------------
def test_two_runs_one_after_the_other_both_run_and_queue_each_advertiser_once(world):
    assert world.refresher.dispatch_due() == DUE
    assert world.store.dispatch_lease is None  # released at the end
    world.clock.advance(60)
    assert world.refresher.dispatch_due() == 0  # the next minute: everything is snoozed
    assert each_once(world)


@pytest.mark.parametrize("overlap_at", ["on_due", "queue"])
def test_a_run_that_starts_while_another_is_queueing_queues_nothing(world, monkeypatch, overlap_at):
    """Run B starts while run A holds the lease: after A read the due index (before it snoozed
    anything), or between A's SQS batches. B queues nothing; every advertiser is queued once."""
    second: list = []
    started = threading.Event()

    def run_b(*_args) -> None:
        if not started.is_set():  # once: B's own sends must not start a third run
            started.set()
            second.append(world.refresher.dispatch_due())

    send = world.queue.send

    def send_then_overlap(ids) -> None:
        send(ids)
        run_b()

    if overlap_at == "queue":
        monkeypatch.setattr(world.queue, "send", send_then_overlap)
    first = world.refresher.dispatch_due(on_due=run_b if overlap_at == "on_due" else None)
    assert each_once(world), sorted(world.queued())  # the old code queued every advertiser twice here
    assert second == [None]  # B found the lease held
    assert first == DUE
    assert world.store.dispatch_lease is None


def test_both_orders_whoever_takes_the_lease_first_queues(world):
    """The same overlap with the roles swapped: a run of another dispatcher instance (its own
    Refresher on the same table) takes the lease first; ours steps aside, then takes it next."""
    other = Refresher(settings=world.settings, store=world.store, vault=None, lwa=None, ads=None,
                      notifier=MemoryNotifier(), queue=world.queue, clock=world.clock)
    seen: list = []
    assert other.dispatch_due(on_due=lambda _due: seen.append(world.refresher.dispatch_due())) == DUE
    assert seen == [None] and each_once(world)
    world.clock.advance(60)
    seen.clear()
    assert world.refresher.dispatch_due(on_due=lambda _due: seen.append(other.dispatch_due())) == 0
    assert seen == [None] and each_once(world)


def test_concurrent_runs_queue_each_advertiser_once(world, monkeypatch):
    """Eight runs released at once on threads. Whichever takes the lease sends its first batch
    only after the seven others have returned, so all of them overlap it."""
    runs = 8
    results = overlapping_runs(runs, world.refresher.dispatch_due, world.queue, monkeypatch)
    assert sorted(results, key=repr) == [DUE] + [None] * (runs - 1)
    assert each_once(world) and world.store.dispatch_lease is None


# --- a run that outlives its lease, a run that crashed --------------------------------------------
def test_a_run_whose_lease_lapsed_stops_queueing_and_cannot_end_its_successors_lease(world, monkeypatch):
    send, calls = world.queue.send, []

    def stall_past_the_lease(ids) -> None:
        send(ids)
        calls.append(len(ids))
        if len(calls) == 1:  # run A freezes after its first batch; run B takes the lapsed lease
            world.clock.advance(DISPATCH_LEASE_SECONDS + 1)
            assert world.store.acquire_dispatch_lease("run-b", world.clock(), world.clock() + 60)

    monkeypatch.setattr(world.queue, "send", stall_past_the_lease)
    assert world.refresher.dispatch_due() == SQS_BATCH  # A stopped after the batch it was sending
    assert calls == [SQS_BATCH]
    assert world.store.dispatch_lease == ("run-b", world.clock() + 60)  # A's release was refused


def test_a_crashed_runs_lease_lapses_by_itself(world):
    now = world.clock()
    assert world.store.acquire_dispatch_lease("crashed", now, now + 30)  # it died holding the lease
    assert world.refresher.dispatch_due() is None and world.queued() == []
    world.clock.advance(29)
    assert world.refresher.dispatch_due() is None
    world.clock.advance(1)  # its expiry: lapsed
    assert world.refresher.dispatch_due() == DUE and each_once(world)


def test_the_lease_is_bounded_by_the_time_the_run_was_given(world):
    seen: list = []
    world.refresher.dispatch_due(on_due=lambda _due: seen.append(world.store.dispatch_lease), lease_seconds=12.5)
    assert seen[0][1] == world.clock() + 12.5


def test_a_run_that_fails_releases_the_lease(world, monkeypatch):
    def refuse(_ids):
        raise RuntimeError("SQS is down")

    monkeypatch.setattr(world.queue, "send", refuse)
    with pytest.raises(RuntimeError):
        world.refresher.dispatch_due()
    assert world.store.dispatch_lease is None


# --- the platform pause ----------------------------------------------------------------------------
def test_a_paused_platform_stops_the_run_before_it_takes_the_lease(world):
    now = world.clock()
    assert world.store.pause_platform("invalid_client", now, now + 900)
    assert world.refresher.dispatch_due() == 0
    assert world.store.dispatch_lease is None and world.queued() == []


def test_pause_and_a_held_lease_the_pause_wins_and_the_holders_lease_is_untouched(world):
    now = world.clock()
    assert world.store.acquire_dispatch_lease("other", now, now + 60)
    assert world.store.pause_platform("invalid_client", now, now + 900)
    assert world.refresher.dispatch_due() == 0
    assert world.store.dispatch_lease == ("other", now + 60) and world.queued() == []
    world.clock.advance(901)  # the pause ended and the holder's lease lapsed
    assert world.refresher.dispatch_due() == DUE and each_once(world)
