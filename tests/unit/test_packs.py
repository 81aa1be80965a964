"""The packed token layout (``adsauth.packs``) on the in-memory world: the merge rule, the
dispatcher's plan and the lobby, a simulated day's validity, LwA calls and write rate, what
downstream can read, and ``migrate-layout`` both ways. The pack jobs themselves (stale writers,
revoke races, writers that die, membership transitions): ``test_pack_jobs``."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace

import pytest

from adsauth import migrate, packs
from adsauth.errors import LwaUnavailable
from adsauth.models import AdvertiserStatus, DueAdvertiser
from adsauth.packs import PackInfo, PackJob
from adsauth.refresher import Refresher
from local.memory import MemoryStore, MemoryVault
from local.simulation import (
    MemoryNotifier,
    MemoryQueue,
    NoProfiles,
    SimulatedLwa,
    seed_connected,
    simulate_day,
    simulation_settings,
)
from tests.unit.fakes import Clock

CONNECTED = AdvertiserStatus.CONNECTED
MINUTE, HOUR = 60, 3600
PROMISE = 600  # seconds of validity every downstream read gets


class World:
    """One stack in memory on a fake clock: the table, the vault, LwA, the queue, a refresher."""

    def __init__(self, layout: str = "packed", lwa=SimulatedLwa) -> None:
        self.clock = Clock()
        self.store = MemoryStore(simulation_settings().due_schedule)
        self.vault = MemoryVault(self.clock)
        self.lwa = lwa(self.clock)
        self.queue = MemoryQueue()
        self.refresher = self.worker(layout)

    def worker(self, layout: str = "packed") -> Refresher:
        """A refresher on this world (another worker, or one deployed with another layout)."""
        return Refresher(settings=simulation_settings(TOKEN_LAYOUT=layout), store=self.store, vault=self.vault,
                         lwa=self.lwa, ads=NoProfiles(), notifier=MemoryNotifier(), queue=self.queue,
                         clock=self.clock, sleep=lambda _s: None)

    # --- advertisers -----------------------------------------------------------------------------
    def connect(self, advertiser_id: str, expires_in: float = HOUR) -> str:
        """An advertiser of its own secrets, as a completed consent leaves it."""
        seed_connected(self.store, self.vault, advertiser_id, self.lwa.grant(self.clock() + expires_in), self.clock())
        return advertiser_id

    def connect_many(self, n: int, prefix: str = "adv", expires_in: float = HOUR) -> list[str]:
        return [self.connect(f"{prefix}-{i:03d}", expires_in) for i in range(n)]

    def pack(self, advertiser_ids, refresher: Refresher | None = None) -> str:
        """A new pack founded by these advertisers (one LwA call each)."""
        job = PackJob(packs.new_pack_id(), (), tuple(advertiser_ids))
        results = (refresher or self.refresher).refresh_pack(job)
        assert [r.outcome for r in results] == ["refreshed"] * len(results), results
        return job.pack_id

    def expire(self, advertiser_id: str, in_seconds: float) -> None:
        """Make the advertiser's token (as the table knows it) expire ``in_seconds`` from now."""
        expires_at = self.clock() + in_seconds
        self.store.advertisers[advertiser_id] = replace(self.store.advertisers[advertiser_id], token_expires_at=expires_at)
        self.store.set_deadline(advertiser_id, expires_at)

    def advertiser(self, advertiser_id: str):
        return self.store.advertisers[advertiser_id]

    def connected(self) -> list[str]:
        return [a for a, adv in sorted(self.store.advertisers.items()) if adv.status is CONNECTED]

    # --- what downstream reads -------------------------------------------------------------------
    def read(self, advertiser_id: str):
        """What a downstream read finds: the entry of the pack the item names, else its own secret."""
        return self.vault.read_access(advertiser_id, self.advertiser(advertiser_id).pack)

    def left(self, advertiser_id: str) -> float:
        found = self.read(advertiser_id)
        return float("-inf") if found is None else found[1] - self.clock()

    def entries(self, kind: str, pack_id: str) -> dict:
        return dict(self.vault.read_pack(kind, pack_id).entries)

    def refresh_token(self, advertiser_id: str) -> str | None:
        """The grant as stored where the item says."""
        pack = self.advertiser(advertiser_id).pack
        if pack:
            entry = self.entries("refresh", pack).get(advertiser_id)
            return None if entry is None else entry["r"]
        return self.vault.refresh.get(advertiser_id)

    # --- the scheduled runs ----------------------------------------------------------------------
    def drain(self, refresher: Refresher | None = None) -> list:
        """Run every queued job as the worker does (a job that raised ``LwaUnavailable`` comes back)."""
        refresher, results, retry = refresher or self.refresher, [], []
        while self.queue.messages:
            job = self.queue.messages.popleft()
            try:
                results += refresher.refresh_pack(job) if isinstance(job, PackJob) else [refresher.refresh(job)]
            except LwaUnavailable:
                retry.append(job)
        self.queue.messages.extend(retry)
        return results

    def run(self, minutes: int, refresher: Refresher | None = None, check=None) -> None:
        """The dispatcher every minute, the worker after it; ``check()`` after each minute."""
        for _ in range(minutes):
            (refresher or self.refresher).dispatch_due()
            self.drain(refresher)
            if check is not None:
                check()
            self.clock.advance(MINUTE)


def due(advertiser_id: str, at: float, pack: str = "") -> DueAdvertiser:
    return DueAdvertiser(advertiser_id, repr(at), at, pack=pack, due_at=at)


# --- the merge rule --------------------------------------------------------------------------------
def entry(v: str) -> dict:
    return {"a": f"Atza|{v}", "e": 1.0, "v": v}


def test_merge_applies_each_change_only_where_the_entry_is_still_the_one_it_started_from():
    base = {"a": entry("a1"), "b": entry("b1"), "c": entry("c1"), "d": entry("d1")}
    current = {"a": entry("a2"), "b": entry("b1"), "d": entry("d1"), "e": entry("e1")}  # a rewritten, c removed
    changes = {"a": entry("a3"), "b": entry("b3"), "c": entry("c3"), "d": None, "f": entry("f1")}
    merged, dropped = packs.merge(base, current, changes)
    assert dropped == {"a", "c"}  # a newer a, a removed c: neither is undone
    assert merged == {"a": entry("a2"), "b": entry("b3"), "e": entry("e1"), "f": entry("f1")}


def test_merge_never_brings_back_an_entry_someone_removed_nor_adds_one_someone_else_added():
    base = {"a": entry("a1")}
    merged, dropped = packs.merge(base, {}, {"a": entry("a2")})
    assert merged == {} and dropped == {"a"}  # removed meanwhile (a revoke): it stays removed
    merged, dropped = packs.merge({}, {"b": entry("b1")}, {"b": entry("b2")})
    assert merged == {"b": entry("b1")} and dropped == {"b"}  # added meanwhile by someone else


def test_a_stale_write_of_the_vault_is_merged_into_what_was_written_since():
    vault = MemoryVault()
    first = vault.read_pack("access", "p")
    vault.write_pack("access", "p", first, {"a": entry("a1"), "b": entry("b1")})
    stale = vault.read_pack("access", "p")
    vault.write_pack("access", "p", stale, {"a": entry("a2")})
    _, dropped = vault.write_pack("access", "p", stale, {"a": entry("a3"), "b": None})  # read before `newer`
    assert dropped == {"a"}
    assert vault.read_pack("access", "p").entries == {"a": entry("a2")}


# --- the plan --------------------------------------------------------------------------------------
NOW, LEAD = 1_000_000.0, 720.0
HORIZON = NOW + LEAD


def test_a_triggered_pack_takes_its_window_members_and_joiners_up_to_its_room():
    window = [due("m1", HORIZON - 10, "p1"), due("o1", HORIZON - 5), due("o3", HORIZON - 1),
              due("o2", HORIZON + 100), due("m2", HORIZON + 300, "p1")]  # deadline order, as the index
    alone, jobs = packs.plan(window, HORIZON, "packed", [PackInfo("p1", packs.MAX_MEMBERS - 2, 10_000)], ["l1"])
    assert jobs == [PackJob("p1", ("m1", "m2"), ("o1", "o3"))]  # room for two: the earliest deadlines
    assert alone == []  # o2 is not due yet; l1 waits for a pack with room


def test_one_left_over_when_the_triggered_pack_is_full_founds_a_pack_when_no_other_has_room():
    window = [due("m1", HORIZON - 10, "p1"), due("o1", HORIZON - 5), due("o2", HORIZON - 1)]
    alone, jobs = packs.plan(window, HORIZON, "packed", [PackInfo("p1", packs.MAX_MEMBERS - 1, 10_000)])
    assert jobs[0] == PackJob("p1", ("m1",), ("o1",)) and alone == []
    assert [(j.members, j.joiners) for j in jobs[1:]] == [((), ("o2",))] and jobs[1].pack_id != "p1"


def test_joiners_come_from_the_window_first_then_the_lobby():
    window = [due("m1", HORIZON - 10, "p1"), due("o1", HORIZON + 100)]
    alone, jobs = packs.plan(window, HORIZON, "packed", [PackInfo("p1", 10, 1_000)], ["l2", "l1", "o1", "m1"])
    assert alone == []
    # the lobby in its order, without those in the window (o1 joins as due, m1 is a member)
    assert jobs == [PackJob("p1", ("m1",), ("o1", "l2", "l1"))]


def test_a_pack_outside_the_horizon_is_not_triggered_by_members_in_the_window():
    window = [due("m1", HORIZON + 10, "p1"), due("m2", HORIZON + 600, "p1")]
    assert packs.plan(window, HORIZON, "packed", [PackInfo("p1", 2, 200)], ["l1"]) == ([], [])


def test_a_pack_is_founded_only_when_no_pack_has_room():
    window = [due("o1", HORIZON - 10), due("o2", HORIZON - 5), due("o3", HORIZON + 100)]
    full = PackInfo("pf", packs.MAX_MEMBERS, 20_000)
    alone, jobs = packs.plan(window, HORIZON, "packed", [full])
    assert alone == [] and len(jobs) == 1
    [founded] = jobs
    assert packs.PACK_ID.match(founded.pack_id) and founded.pack_id != "pf"
    assert founded.members == () and founded.joiners == ("o1", "o2")  # only those due now
    # a pack with room that is not triggered: they are refreshed alone and join it from the lobby
    alone, jobs = packs.plan(window, HORIZON, "packed", [full, PackInfo("pr", 3, 300)])
    assert alone == ["o1", "o2"] and jobs == []


def test_founded_packs_are_no_larger_than_a_new_packs_room():
    window = [due(f"o{i:03d}", HORIZON - 1) for i in range(250)]
    alone, jobs = packs.plan(window, HORIZON, "packed", [])
    size = PackInfo("").room()
    assert alone == [] and [len(j.joiners) for j in jobs] == [size] * (250 // size) + [250 % size]
    assert sorted(a for j in jobs for a in j.joiners) == sorted(d.advertiser_id for d in window)


def test_the_per_advertiser_layout_never_joins():
    window = [due("m1", HORIZON - 10, "p1"), due("o1", HORIZON - 5), due("o2", HORIZON + 100)]
    for packs_there in (None, [PackInfo("p1", 1, 100)]):
        alone, jobs = packs.plan(window, HORIZON, "per_advertiser", packs_there, ["l1"])
        assert alone == ["o1"] and jobs == [PackJob("p1", ("m1",))]  # the member is moved out by its job


def test_room_is_bounded_by_members_and_by_bytes():
    assert PackInfo("p").room() == min(packs.MAX_MEMBERS, packs.ADMIT_BYTES // packs.NEW_ENTRY_BYTES)
    assert PackInfo("p", 99, 990).room() == 1
    assert PackInfo("p", 10, packs.ADMIT_BYTES).room() == 0
    assert PackInfo("p", 10, packs.ADMIT_BYTES + 5_000).room() == 0


# --- the dispatcher and the lobby ------------------------------------------------------------------
def test_the_dispatcher_queues_one_job_per_triggered_pack_and_empties_the_lobby_of_its_joiners():
    world = World()
    members = world.connect_many(3, "mem")
    pack_id = world.pack(members)
    lobby = world.connect_many(2, "lob")
    for a in lobby:
        world.store.enter_lobby(a)
    world.expire(members[0], 300)  # due: triggers the pack
    world.expire(members[1], LEAD + 200)  # within the window: rides along
    waiting = world.connect("own-due", 400)
    world.store.enter_lobby(waiting)  # in the lobby and due at once
    assert world.refresher.dispatch_due() == 5
    [job] = list(world.queue.messages)
    assert job == PackJob(pack_id, (members[0], members[1]), (waiting, *lobby))
    assert world.store.lobby() == []  # every joiner it assigned is out of the lobby
    results = world.drain()
    assert {r.advertiser_id: r.outcome for r in results} == {a: "refreshed" for a in job.advertisers()}
    assert all(world.advertiser(a).pack == pack_id for a in (*lobby, waiting))


def test_an_advertiser_refreshed_alone_waits_in_the_lobby_and_joins_at_the_packs_next_job():
    world = World()
    pack_id = world.pack(world.connect_many(2, "mem"))  # due again in 48 minutes
    world.clock.advance(1_000)
    alone = world.connect("own", 300)
    assert world.refresher.dispatch_due() == 1 and list(world.queue.messages) == [alone]  # a pack has room: alone
    world.drain()
    assert world.advertiser(alone).pack == "" and world.store.lobby() == [alone]
    calls = len(world.lwa.refresh_calls)
    world.clock.advance(HOUR - LEAD - 1_000 + 1)  # the pack's members are due; it is not
    world.run(1)
    assert world.advertiser(alone).pack == pack_id and world.store.lobby() == []
    assert len(world.lwa.refresh_calls) == calls + 3  # its members and the joiner, one call each
    assert alone not in world.vault.access and alone not in world.vault.refresh  # its own secrets are gone


def test_per_advertiser_dispatch_never_founds_nor_joins():
    world = World("per_advertiser")
    world.connect_many(5, "own", 300)
    world.store.enter_lobby("own-000")
    assert world.refresher.dispatch_due() == 5
    assert all(isinstance(m, str) for m in world.queue.messages)
    world.drain()
    assert all(world.advertiser(a).pack == "" for a in world.connected()) and world.vault.packs == {}
    assert world.store.lobby() == ["own-000"]  # untouched: nothing reads it


def test_a_paused_platform_queues_nothing_and_a_pack_job_makes_no_call():
    world = World()
    members = world.connect_many(3, "mem")
    pack_id = world.pack(members)
    for a in members:
        world.expire(a, 100)
    world.connect("own", 100)
    calls = len(world.lwa.refresh_calls)
    assert world.store.pause_platform("invalid_client", world.clock(), world.clock() + 900)
    writes = (world.store.writes, len(world.vault.secret_writes))
    assert world.refresher.dispatch_due() == 0 and not world.queue.messages
    results = world.refresher.refresh_pack(PackJob(pack_id, tuple(members), ("own",)))
    assert {r.outcome for r in results} == {"paused"} and len(world.lwa.refresh_calls) == calls
    assert (world.store.writes, len(world.vault.secret_writes)) == writes  # not even the pack's lease
    world.clock.advance(901)  # the pause ends by itself: the pack and the advertiser are queued again
    assert world.refresher.dispatch_due() == 4


def test_members_due_within_the_window_of_each_other_are_written_together_once():
    """Deadlines spread over ten minutes (a member refreshed alone, a retry): the first one due
    takes the others along, so the pack's access secret is written once, not once a minute."""
    world = World()
    members = world.connect_many(6, "mem")
    pack_id = world.pack(members)
    world.clock.advance(1_000)
    for i, a in enumerate(members):
        world.expire(a, LEAD + 5 + i * 100)  # due one after the other, 100 s apart
    before = len(world.vault.secret_writes)
    world.run(15)
    written = [name for name, _ in world.vault.secret_writes[before:]]
    assert written == [f"access/packs/{pack_id}"]
    assert len({world.advertiser(a).token_expires_at for a in members}) == 1  # one deadline from now on


# --- a simulated day -------------------------------------------------------------------------------
@pytest.mark.parametrize("failure_rate", [0.0, 0.05])
def test_a_packed_day_keeps_ten_minutes_for_every_read_at_about_one_call_per_token_lifetime(failure_rate):
    result = simulate_day(300, 4, layout="packed", lwa_failure_rate=failure_rate)
    assert sum(p.members for p in result["packs"]) > 150  # half the advertisers are in packs by then
    assert result["min_remaining_seconds"] >= PROMISE, result["min_remaining_seconds"]
    refreshes = result["lwa_refresh_calls"] - result["failed_jobs"]  # the calls that renewed a token
    assert refreshes / (300 * 4) <= 1.3
    # a failed call is retried at the dispatcher's next run, once
    assert result["calls_per_advertiser_hour"] <= 1.3 * (1 + failure_rate), result["calls_per_advertiser_hour"]
    assert (result["failed_jobs"] > 0) == (failure_rate > 0)


@pytest.mark.parametrize("seed", [1, 3, 5])
def test_a_member_whose_refresh_failed_is_retried_at_the_next_run_not_after_the_snooze(seed):
    """With 5% of LwA calls failing, a member that failed is retried a minute later (as a job of
    its own is delivered again), so a read loses at most a minute per failure in a row; waiting
    out the dispatcher's five-minute snooze left reads with under six minutes."""
    result = simulate_day(200, 6, layout="packed", lwa_failure_rate=0.05, seed=seed)
    assert result["failed_jobs"] > 0
    assert result["min_remaining_seconds"] >= PROMISE - MINUTE, result["min_remaining_seconds"]


def pack_writes(result) -> dict[str, list[float]]:
    start = 1_800_000_000.0  # the simulation's clock starts there
    writes: dict[str, list[float]] = defaultdict(list)
    for name, at in result["secret_writes"]:
        if "/packs/" in name:
            writes[name].append(at - start)
    return writes


def test_no_pack_secret_is_written_more_than_once_in_ten_minutes_nor_six_times_an_hour():
    result = simulate_day(400, 8, layout="packed")
    writes = pack_writes(result)
    assert len(writes) >= 6  # three packs at least, two secrets each
    for name, times in writes.items():
        steady = sorted(t for t in times if t >= HOUR)
        gaps = [b - a for a, b in zip(steady, steady[1:])]
        assert min(gaps, default=PROMISE) >= PROMISE, (name, steady)
        assert max((sum(1 for u in steady if t <= u < t + HOUR) for t in steady), default=0) <= 6, (name, steady)


# --- what downstream can read ----------------------------------------------------------------------
REFRESH_TOKEN = re.compile(r"Atzr\|")


def test_access_pack_entries_never_hold_a_refresh_token_and_refresh_packs_are_never_named_as_access():
    world = World()
    world.lwa.rotate = True
    refresh_tokens, lwa_refresh = set(), world.lwa.refresh

    def every_refresh_token(region, refresh_token):
        tokens = lwa_refresh(region, refresh_token)
        refresh_tokens.update((refresh_token, tokens.refresh_token))
        return tokens

    world.lwa.refresh = every_refresh_token
    world.connect_many(40, "adv", 1_000)
    world.run(3 * 60)  # three hours: packs founded and joined, tokens rotated at every refresh
    assert world.vault.packs and all(world.advertiser(a).pack for a in world.connected())
    assert len(refresh_tokens) >= 40 * 4  # every one LwA ever issued or took
    for (kind, pack_id), value in world.vault.packs.items():
        text = packs.encode(value.entries)
        if kind == "access":
            assert not REFRESH_TOKEN.search(text) and not any(t in text for t in refresh_tokens)
            assert all(set(e) == {"a", "e", "v"} for e in value.entries.values())
        else:
            assert all(set(e) == {"r", "i", "f", "v"} for e in value.entries.values())
    # the names: an advertiser's own two secrets, a pack's two; a pack's refresh secret is never
    # under access/ (downstream's grant), whatever the pack id
    names = {name for name, _ in world.vault.secret_writes}
    pack_ids = {p for _, p in world.vault.packs}
    assert all(re.fullmatch(r"(access|refresh)/(packs/[0-9a-f]{16}|adv-\d{3})", n) for n in names), names
    for pack_id in pack_ids:
        assert not packs.refresh_name("p/", pack_id).startswith("p/access/")
        assert packs.access_name("p/", pack_id).startswith("p/access/")


# --- migrate-layout --------------------------------------------------------------------------------
class Watched:
    """Wraps every writing method of the vault and the store: after each call, every connected
    advertiser's token is readable where its item says, with ``PROMISE`` seconds left."""

    VAULT = ("write_pack", "delete_pack", "put_grant", "undo_grant", "put_access_token", "replace_refresh_token",
             "delete_tokens")
    STORE = ("record_refresh", "set_pack", "record_pack", "acquire_lease", "release_lease", "revoke_advertiser",
             "complete_connection", "set_deadline", "snooze", "enter_lobby", "leave_lobby")

    def __init__(self, world: World, monkeypatch, minimum: float = PROMISE) -> None:
        self.world, self.minimum, self.checks = world, minimum, 0
        for target, names in ((world.vault, self.VAULT), (world.store, self.STORE)):
            for name in names:
                monkeypatch.setattr(target, name, self._checked(name, getattr(target, name)))

    def _checked(self, name, method):
        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            finally:
                self.check(f"after {name}")
        return call

    def check(self, where: str = "") -> None:
        self.checks += 1
        for a in self.world.connected():
            left = self.world.left(a)
            assert left >= self.minimum, f"{a}: {left:.0f} s left {where}"


@pytest.mark.parametrize("n", [1, 25])
def test_migrating_to_packed_moves_everyone_and_every_read_finds_ten_minutes_throughout(monkeypatch, n):
    world = World("per_advertiser")
    ids = [world.connect(f"adv-{i:03d}", 900 + 60 * i) for i in range(n)]
    monkeypatch.setattr(migrate, "AT_ONCE", 1)  # one advertiser at a time: each step is checked alone
    watched = Watched(world, monkeypatch)
    report = migrate.migrate_layout(world.worker("packed"), "packed", pack_size=10)
    assert watched.checks > 4 * n
    assert report["moved"] == n and report["not_moved"] == [] and report["packs"] == -(-n // 10)
    assert all(world.advertiser(a).pack for a in ids)
    assert world.vault.access == {} and world.vault.refresh == {}  # their own secrets are gone
    assert len(world.lwa.refresh_calls) == n


def test_migrating_to_per_advertiser_moves_everyone_out_and_deletes_the_packs(monkeypatch):
    world = World("packed")
    ids = world.connect_many(25, "adv")
    for start in range(0, 25, 10):
        world.pack(ids[start:start + 10])
    assert len(world.store.list_packs()) == 3
    monkeypatch.setattr(migrate, "AT_ONCE", 1)
    watched = Watched(world, monkeypatch)
    calls = len(world.lwa.refresh_calls)
    report = migrate.migrate_layout(world.worker("per_advertiser"), "per_advertiser")
    assert watched.checks > 25
    assert report["moved"] == 25 and report["not_moved"] == [] and report["packs"] == 0
    assert all(world.advertiser(a).pack == "" for a in ids)
    assert world.vault.packs == {} and world.store.packs == {}
    assert sorted(world.vault.access) == sorted(ids) and len(world.lwa.refresh_calls) == calls + 25


@pytest.mark.parametrize("to", packs.LAYOUTS)
def test_migrating_to_a_layout_the_functions_do_not_use_changes_nothing(to):
    world = World()
    world.connect_many(3, "adv")
    other = "per_advertiser" if to == "packed" else "packed"
    before = (dict(world.store.advertisers), dict(world.vault.access), len(world.vault.secret_writes))
    with pytest.raises(migrate.LayoutMismatch):
        migrate.migrate_layout(world.worker(other), to)
    assert before == (dict(world.store.advertisers), dict(world.vault.access), len(world.vault.secret_writes))
    assert world.lwa.refresh_calls == []
    with pytest.raises(ValueError):
        migrate.migrate_layout(world.refresher, "sideways")


@pytest.mark.parametrize("to", packs.LAYOUTS)
def test_migrating_twice_changes_nothing_the_second_time(to):
    world = World("per_advertiser" if to == "packed" else "packed")
    ids = world.connect_many(12, "adv")
    if to == "per_advertiser":
        world.pack(ids)
    refresher = world.worker(to)
    first = migrate.migrate_layout(refresher, to, pack_size=5)
    assert first["moved"] == 12
    state = (dict(world.store.advertisers), dict(world.vault.packs), dict(world.vault.access),
             dict(world.store.packs), len(world.vault.secret_writes), len(world.lwa.refresh_calls))
    second = migrate.migrate_layout(refresher, to, pack_size=5)
    assert second["moved"] == 0 and second["not_moved"] == [] and second["packs"] == first["packs"]
    assert state == (dict(world.store.advertisers), dict(world.vault.packs), dict(world.vault.access),
                     dict(world.store.packs), len(world.vault.secret_writes), len(world.lwa.refresh_calls))


def test_migrating_to_packed_while_the_dispatcher_runs_moves_everyone_once():
    world = World("packed")
    ids = world.connect_many(30, "adv", 900)
    refresher = world.refresher
    refresher.dispatch_due(world.clock() + 200)  # a founding job is queued already
    report = migrate.migrate_layout(refresher, "packed", pack_size=10)  # the real pool: ten at once
    assert report["moved"] == 30 and report["not_moved"] == []
    world.drain()  # the queued jobs find them packed: no call, no move
    assert all(world.advertiser(a).pack for a in ids) and len(world.lwa.refresh_calls) == 30
    assert all(world.left(a) >= HOUR - 1 for a in ids)
