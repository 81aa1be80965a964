"""A simulated day of the refresher: the real dispatcher and worker logic (``Refresher``) against
in-memory stand-ins of the table, the vault, the queue and LwA, on a fake clock.

    python -m local.simulation            # 50 advertisers, 24 hours
    simulate_day(200, 6, lwa_failure_rate=0.05)
    simulate_day(1000, 24, layout="packed", migrated=True, token_chars=(400, 700))

It measures what the issue promises: LwA refresh calls per advertiser-hour (≤ 1.3) and the least
remaining validity any downstream read saw (≥ 10 minutes), and what the token layout costs:
every secret write after the clock started (the write-rate figures), the packs. The in-memory
stand-ins follow the same rules as the real adapters (conditional lease writes, one successor per
refresh-token version, a sparse due index) and the unit tests use them too.
"""

from __future__ import annotations

import itertools
import random
import string
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable

from adsauth import profiles
from adsauth.errors import GrantInvalid, LwaUnavailable
from adsauth.migrate import migrate_layout
from adsauth.models import Advertiser, AdvertiserStatus, Grant, TokenSet
from adsauth.packs import PackInfo, PackJob
from adsauth.refresher import Refresher
from adsauth.regions import Region
from adsauth.settings import settings_from_env
from local.memory import MemoryMailer, MemoryPublisher, MemoryStore, MemoryVault

CONNECTED = AdvertiserStatus.CONNECTED
__all__ = ["MemoryMailer", "MemoryPublisher", "MemoryStore", "MemoryVault", "seed_connected", "simulate_day"]


def seed_connected(store, vault, advertiser_id: str, tokens: TokenSet, now: float, *, grant: Grant | None = None,
                   region: Region = Region.NA, name: str = "Shop") -> Advertiser:
    """A connected advertiser, as a completed consent leaves it (for simulations and tests)."""
    grant = grant or Grant(now, None, "none")
    advertiser = Advertiser(advertiser_id, name, "ops@sim.example", region, CONNECTED, now, now,
                            token_expires_at=tokens.expires_at, connected_at=now, profiles_at=now,
                            consented_at=grant.consented_at, grant_expires_at=grant.expires_at,
                            grant_expiry_basis=grant.basis)
    vault.put_grant(advertiser_id, tokens, now)
    store.create_advertiser(advertiser, None, ())
    return advertiser


class SimulatedLwa:
    """LwA's refresh grant at the fake time: tokens live ``lifetime`` seconds. ``token_chars``
    (shortest, longest): tokens of a random length in that range, as LwA's are (350 to 2,048
    bytes); None: short ones (``Atza|sim-1``)."""

    def __init__(self, clock: Callable[[], float], lifetime: float = 3600,
                 token_chars: tuple[int, int] | None = None) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.refresh_calls: list[Region] = []
        self.refresh_fail: Exception | None = None
        self.rotate = False
        self.before_refresh: Callable[[], None] | None = None  # e.g. a pause, for concurrency tests
        self.failure_rate = 0.0
        self.random = random.Random(0)
        self.token_chars = token_chars
        self._filler = "".join(random.Random(1).choices(string.ascii_letters + string.digits + "-_", k=4096))
        self._lengths = random.Random(2)
        self._grants: dict[str, bool] = {}  # refresh token -> revoked
        self._n = itertools.count(1)
        self._lock = threading.Lock()

    def _token(self, kind: str, n: int) -> str:
        token = f"{kind}|sim-{n}"
        if self.token_chars is None:
            return token
        shortest, longest = self.token_chars
        length = shortest + int(self._lengths.random() * (longest - shortest + 1))
        start = int(self._lengths.random() * (len(self._filler) - length))
        return f"{token}|{self._filler[start:start + max(0, length - len(token) - 1)]}"

    def grant(self, expires_at: float | None = None) -> TokenSet:
        with self._lock:
            n = next(self._n)
            refresh_token = self._token("Atzr", n)
            self._grants[refresh_token] = False
            access_token = self._token("Atza", n)
        return TokenSet(access_token, refresh_token, expires_at or self.clock() + self.lifetime)

    def revoke(self, refresh_token: str) -> None:
        self._grants[refresh_token] = True

    def refresh(self, region: Region, refresh_token: str) -> TokenSet:
        with self._lock:
            self.refresh_calls.append(region)
        if self.before_refresh:
            self.before_refresh()
        if self.refresh_fail:
            raise self.refresh_fail
        if self.failure_rate and self.random.random() < self.failure_rate:
            raise LwaUnavailable()
        with self._lock:
            if self._grants.get(refresh_token, True):
                raise GrantInvalid()
            n = next(self._n)
            if self.rotate:
                del self._grants[refresh_token]
                refresh_token = self._token("Atzr", n)
                self._grants[refresh_token] = False
            access_token = self._token("Atza", n)
        return TokenSet(access_token, refresh_token, self.clock() + self.lifetime)


class MemoryQueue:
    def __init__(self) -> None:
        self.messages: deque[str] = deque()
        self.batches: list[int] = []

    def send(self, advertiser_ids):
        self.batches.append(len(advertiser_ids))
        self.messages.extend(advertiser_ids)

    def send_packs(self, jobs):
        self.batches.append(len(jobs))
        self.messages.extend(jobs)


class MemoryNotifier:
    def __init__(self) -> None:
        self.alerts: list[tuple[str, str]] = []

    def alert(self, subject, message):
        self.alerts.append((subject, message))


class NoProfiles:
    def __init__(self) -> None:
        self.calls = 0

    def list_profiles(self, region, access_token):
        self.calls += 1
        return []


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def simulation_settings(**env):
    base = {"TABLE_NAME": "sim", "PUBLIC_BASE_URL": "https://sim.example", "LWA_CLIENT_ID": "amzn1.sim",
            "LWA_CLIENT_SECRET_NAME": "sim/client", "SECRET_PREFIX": "sim/",
            "OPERATOR_NAME": "Simulated Agency"}  # every stack sets it (cdk.json operator_name is required)
    return settings_from_env({**base, **{k: str(v) for k, v in env.items()}})


class InlineExecutor:
    """A thread pool that runs each call at once in the caller's thread. The simulation's
    stand-ins answer at once, so a pool's threads only cost time: ``simulate_day`` puts this in
    place of the pool ``adsauth.profiles`` starts per listing (every advertiser lists its profiles
    once a day; at 100,000 advertisers the threads alone took minutes). Same results, same order."""

    def __init__(self, *_args, **_kwargs) -> None:
        pass

    def __enter__(self) -> "InlineExecutor":
        return self

    def __exit__(self, *_exc_info) -> None:
        return None

    def map(self, f, *iterables):
        return iter([f(*args) for args in zip(*iterables)])


@contextmanager
def _inline_profile_listing():
    saved = profiles.ThreadPoolExecutor
    profiles.ThreadPoolExecutor = InlineExecutor
    try:
        yield
    finally:
        profiles.ThreadPoolExecutor = saved


def simulate_day(
    advertisers: int = 50, hours: float = 24, *, step_seconds: float = 60, lead_seconds: int = 720,
    reads_per_hour: float = 6, lwa_failure_rate: float = 0.0, seed: int = 7, layout: str = "per_advertiser",
    migrated: bool = False, token_chars: tuple[int, int] | None = None, adapters: Callable | None = None,
) -> dict:
    """Run the dispatcher every ``step_seconds`` and drain the queue through the worker logic
    (a failed job comes back at the next step); downstream reads at random times (a Poisson
    process of ``reads_per_hour`` per advertiser) look at the stored access token. Advertisers
    start connected, in their own secrets, with tokens of random age.

    ``migrated`` (packed layout): before the clock starts they are moved into packs by
    ``adsauth.migrate.migrate_layout``, as an operator does once, its jobs spread over the token
    lifetime before the start so the packs' deadlines are spread as a running stack's are: the day
    is the steady state of a migrated stack. ``token_chars``: the length range of LwA's tokens
    (``SimulatedLwa``). ``adapters(store, vault, queue)`` returns the store, vault and queue the
    day's refresher uses instead (counting wrappers, say); the simulation itself reads the
    in-memory ones. Only what happens after the start is counted (LwA calls, secret writes)."""
    if migrated and layout != "packed":
        raise ValueError("only the packed layout starts migrated")
    rng, read_rng = random.Random(seed), random.Random(seed + 2)
    clock = FakeClock()
    start = clock.now
    settings = simulation_settings(REFRESH_LEAD_SECONDS=lead_seconds, TOKEN_LAYOUT=layout)
    store, vault, queue = MemoryStore(settings.due_schedule), MemoryVault(clock), MemoryQueue()
    lwa = SimulatedLwa(clock, token_chars=token_chars)
    lwa.failure_rate, lwa.random = lwa_failure_rate, random.Random(seed + 1)
    used_store, used_vault, used_queue = adapters(store, vault, queue) if adapters else (store, vault, queue)
    refresher = Refresher(settings=settings, store=used_store, vault=used_vault, lwa=lwa, ads=NoProfiles(),
                          notifier=MemoryNotifier(), queue=used_queue, clock=clock)
    ids = [f"adv-sim{i:05d}" for i in range(advertisers)]
    # migrate_layout's packs take what a new pack has room for; the k-th job runs at first + k * gap
    jobs = -(-advertisers // max(1, PackInfo("").room()))
    first = start + lead_seconds + step_seconds - lwa.lifetime
    gap = (lwa.lifetime - lead_seconds - step_seconds) / max(1, jobs)
    clock.now = first if migrated else start
    for i, advertiser_id in enumerate(ids):
        now = start - rng.uniform(0, 86400)
        tokens = lwa.grant(expires_at=start + rng.uniform(lead_seconds + step_seconds, lwa.lifetime))
        seed_connected(store, vault, advertiser_id, tokens, now, name=f"Shop {i}")
    with _inline_profile_listing():
        migration = None
        if migrated:
            def next_job(_line: str) -> None:
                clock.now += gap

            migrator = Refresher(settings=settings, store=store, vault=vault, lwa=lwa, ads=NoProfiles(),
                                 notifier=MemoryNotifier(), queue=queue, clock=clock)
            moved = migrate_layout(migrator, "packed", progress=next_job)
            migration = {**moved, "not_moved": len(moved["not_moved"])}
        clock.now = start
        at_start = _secrets(store, vault)
        writes_before, calls_before = len(vault.secret_writes), len(lwa.refresh_calls)
        end = start + hours * 3600
        rate = advertisers * reads_per_hour / 3600
        next_read = start + read_rng.expovariate(rate) if rate > 0 else float("inf")
        reads, min_left, failed_jobs = 0, float("inf"), 0
        dispatch_seconds: list[float] = []
        lwa_calls_per_step: list[int] = []
        steps = int(hours * 3600 / step_seconds)
        for step in range(steps):
            clock.now = start + step * step_seconds
            calls = len(lwa.refresh_calls)
            began = time.perf_counter()
            refresher.dispatch_due(clock.now)
            dispatch_seconds.append(time.perf_counter() - began)
            retry: list[str] = []
            while queue.messages:
                job = queue.messages.popleft()
                try:
                    if isinstance(job, PackJob):
                        failed_jobs += sum(r.outcome == "failed" for r in refresher.refresh_pack(job))
                    else:
                        refresher.refresh(job)
                except LwaUnavailable:
                    failed_jobs += 1
                    retry.append(job)  # SQS delivers it again after the visibility timeout
            queue.messages.extend(retry)
            lwa_calls_per_step.append(len(lwa.refresh_calls) - calls)
            step_end = min(clock.now + step_seconds, end)
            while next_read < step_end:
                advertiser_id = ids[read_rng.randrange(advertisers)]
                left = vault.read_access(advertiser_id, store.advertisers[advertiser_id].pack)[1] - next_read
                min_left, reads = min(min_left, left), reads + 1
                next_read += read_rng.expovariate(rate)
    calls = len(lwa.refresh_calls) - calls_before
    return {
        "advertisers": advertisers,
        "hours": hours,
        "step_seconds": step_seconds,
        "start": start,
        "lwa_refresh_calls": calls,
        "calls_per_advertiser_hour": calls / (advertisers * hours),
        "lwa_calls_per_step": lwa_calls_per_step,
        "reads": reads,
        "min_remaining_seconds": min_left,
        "failed_jobs": failed_jobs,
        "dispatch_queries": store.due_queries,
        "dispatch_seconds": dispatch_seconds,
        "max_batch": max(queue.batches, default=0),
        "secret_writes": vault.secret_writes[writes_before:],
        "packs": store.list_packs(),
        "migration": migration,
        "at_start": at_start,
        "at_end": _secrets(store, vault),
    }


def _secrets(store: MemoryStore, vault: MemoryVault) -> dict:
    """Where the tokens are: the secrets there are, the packs and their members."""
    packs = store.list_packs()
    connected = [a for a in store.advertisers.values() if a.status is CONNECTED]
    return {"secrets": len(vault.refresh) + len(vault.access) + len(vault.packs), "packs": len(packs),
            "pack_members": [p.members for p in packs], "own_secrets_advertisers": sum(not a.pack for a in connected),
            "connected": len(connected)}


if __name__ == "__main__":
    result = simulate_day()
    print(f"LwA refresh calls per advertiser-hour: {result['calls_per_advertiser_hour']:.3f}")
    print(f"least validity a read saw: {result['min_remaining_seconds'] / 60:.1f} minutes ({result['reads']} reads)")
