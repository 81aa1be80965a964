"""A simulated day of the refresher: the real dispatcher and worker logic (``Refresher``) against
in-memory stand-ins of the table, the vault, the queue and LwA, on a fake clock.

    python -m local.simulation            # 50 advertisers, 24 hours
    simulate_day(200, 6, lwa_failure_rate=0.05)

It measures what the issue promises: LwA refresh calls per advertiser-hour (≤ 1.3) and the least
remaining validity any downstream read saw (≥ 10 minutes). The in-memory stand-ins follow the
same rules as the real adapters (conditional lease writes, one successor per refresh-token
version, a sparse due index) and the unit tests use them too.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import deque
from typing import Callable

from adsauth.errors import GrantInvalid, LwaUnavailable
from adsauth.models import Advertiser, AdvertiserStatus, Grant, TokenSet
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
    """LwA's refresh grant at the fake time: tokens live ``lifetime`` seconds."""

    def __init__(self, clock: Callable[[], float], lifetime: float = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.refresh_calls: list[Region] = []
        self.refresh_fail: Exception | None = None
        self.rotate = False
        self.before_refresh: Callable[[], None] | None = None  # e.g. a pause, for concurrency tests
        self.failure_rate = 0.0
        self.random = random.Random(0)
        self._grants: dict[str, bool] = {}  # refresh token -> revoked
        self._n = itertools.count(1)
        self._lock = threading.Lock()

    def grant(self, expires_at: float | None = None) -> TokenSet:
        with self._lock:
            n = next(self._n)
            self._grants[f"Atzr|sim-{n}"] = False
        return TokenSet(f"Atza|sim-{n}", f"Atzr|sim-{n}", expires_at or self.clock() + self.lifetime)

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
                refresh_token = f"Atzr|sim-{n}"
                self._grants[refresh_token] = False
        return TokenSet(f"Atza|sim-{n}", refresh_token, self.clock() + self.lifetime)


class MemoryQueue:
    def __init__(self) -> None:
        self.messages: deque[str] = deque()
        self.batches: list[int] = []

    def send(self, advertiser_ids):
        self.batches.append(len(advertiser_ids))
        self.messages.extend(advertiser_ids)


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
            "LWA_CLIENT_SECRET_NAME": "sim/client", "SECRET_PREFIX": "sim/"}
    return settings_from_env({**base, **{k: str(v) for k, v in env.items()}})


def simulate_day(
    advertisers: int = 50, hours: float = 24, *, step_seconds: float = 60, lead_seconds: int = 720,
    reads_per_hour: float = 6, lwa_failure_rate: float = 0.0, seed: int = 7,
) -> dict:
    """Run the dispatcher every ``step_seconds`` and drain the queue through the worker logic
    (a failed job comes back at the next step); downstream reads at random times look at the
    stored access token. Advertisers start connected with tokens of random age."""
    rng = random.Random(seed)
    clock = FakeClock()
    start = clock.now
    settings = simulation_settings(REFRESH_LEAD_SECONDS=lead_seconds)
    store, vault, lwa, queue = MemoryStore(settings.due_schedule), MemoryVault(), SimulatedLwa(clock), MemoryQueue()
    lwa.failure_rate, lwa.random = lwa_failure_rate, random.Random(seed + 1)
    refresher = Refresher(settings=settings, store=store, vault=vault, lwa=lwa, ads=NoProfiles(),
                          notifier=MemoryNotifier(), queue=queue, clock=clock)
    reads: list[tuple[float, str]] = []
    for i in range(advertisers):
        advertiser_id = f"adv-sim{i:05d}"
        now = start - rng.uniform(0, 86400)
        tokens = lwa.grant(expires_at=start + rng.uniform(lead_seconds + step_seconds, lwa.lifetime))
        seed_connected(store, vault, advertiser_id, tokens, now, name=f"Shop {i}")
        t = start
        while (t := t + rng.expovariate(reads_per_hour / 3600)) < start + hours * 3600:
            reads.append((t, advertiser_id))
    reads.sort()
    pending_reads, min_left, failed_jobs = deque(reads), float("inf"), 0
    steps = int(hours * 3600 / step_seconds)
    for step in range(steps):
        clock.now = start + step * step_seconds
        refresher.dispatch_due(clock.now)
        retry: list[str] = []
        while queue.messages:
            advertiser_id = queue.messages.popleft()
            try:
                refresher.refresh(advertiser_id)
            except LwaUnavailable:
                failed_jobs += 1
                retry.append(advertiser_id)  # SQS delivers it again after the visibility timeout
        queue.messages.extend(retry)
        while pending_reads and pending_reads[0][0] < clock.now + step_seconds:
            at, advertiser_id = pending_reads.popleft()
            min_left = min(min_left, vault.access[advertiser_id][1] - at)
    calls = len(lwa.refresh_calls)
    return {
        "advertisers": advertisers,
        "hours": hours,
        "lwa_refresh_calls": calls,
        "calls_per_advertiser_hour": calls / (advertisers * hours),
        "reads": len(reads),
        "min_remaining_seconds": min_left,
        "failed_jobs": failed_jobs,
        "dispatch_queries": store.due_queries,
        "max_batch": max(queue.batches, default=0),
    }


if __name__ == "__main__":
    result = simulate_day()
    print(f"LwA refresh calls per advertiser-hour: {result['calls_per_advertiser_hour']:.3f}")
    print(f"least validity a read saw: {result['min_remaining_seconds'] / 60:.1f} minutes ({result['reads']} reads)")
