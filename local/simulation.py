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
from dataclasses import replace
from typing import Callable

from adsauth.errors import GrantInvalid, LwaUnavailable, RefreshTokenMissing, RefreshTokenSuperseded
from adsauth.models import (
    Advertiser,
    AdvertiserStatus,
    DueAdvertiser,
    DueSchedule,
    Lease,
    StoredRefreshToken,
    TokenEvent,
    TokenSet,
)
from adsauth.refresher import Refresher
from adsauth.regions import Region
from adsauth.settings import settings_from_env

CONNECTED = AdvertiserStatus.CONNECTED


class MemoryStore:
    """The refresher's part of the table (and the advertisers and profiles it shares)."""

    def __init__(self, schedule: DueSchedule | None = None) -> None:
        self.schedule = schedule or DueSchedule()
        self.advertisers: dict[str, Advertiser] = {}
        self.profiles: dict[str, dict[tuple, object]] = {}
        self.due: dict[str, float] = {}  # the sparse byExpiry index: connected advertisers only
        self.leases: dict[str, tuple[str, float]] = {}
        self.fences: dict[str, int] = {}
        self.events: list[TokenEvent] = []
        self.paused: tuple[str, float] | None = None
        self.due_queries = 0
        self.lock = threading.RLock()

    def get_advertiser(self, advertiser_id):
        return self.advertisers.get(advertiser_id)

    def list_advertisers(self):
        return [self.advertisers[k] for k in sorted(self.advertisers)]

    def list_profiles(self, advertiser_id):
        return list(self.profiles.get(advertiser_id, {}).values())

    def set_status(self, advertiser_id, status, reason, now, *, unless=None):
        with self.lock:
            adv = self.advertisers[advertiser_id]
            if unless is not None and adv.status is unless:
                return False
            self.advertisers[advertiser_id] = replace(adv, status=status, status_reason=reason, updated_at=now)
            if status is not CONNECTED:
                self.due.pop(advertiser_id, None)
            return True

    def record_connection(self, *, advertiser_id, invitation_hash, profiles, pending_regions, token_expires_at, now):
        with self.lock:
            pending = tuple(pending_regions)
            self.merge_profiles(advertiser_id, profiles, now)
            self.advertisers[advertiser_id] = replace(
                self.advertisers[advertiser_id], status=CONNECTED, status_reason="", token_expires_at=token_expires_at,
                connected_at=now, pending_regions=pending, profiles_at=now, last_refresh_error="",
            )
            self.due[advertiser_id] = self.schedule.deadline(token_expires_at, now, pending)

    def merge_profiles(self, advertiser_id, found, now):
        with self.lock:
            stored = self.profiles.setdefault(advertiser_id, {})
            for region, items in found.items():
                seen = {p.profile_id for p in items}
                for p in items:
                    stored[(region, p.profile_id)] = replace(p, status="active", removed_at=None)
                for (known_region, pid), old in list(stored.items()):
                    if known_region == region and pid not in seen and old.status != "removed":
                        stored[(known_region, pid)] = replace(old, status="removed", removed_at=now)

    # --- due index ---------------------------------------------------------------------------
    def due_advertisers(self, before):
        with self.lock:
            self.due_queries += 1
            return [DueAdvertiser(a, repr(d)) for a, d in sorted(self.due.items()) if d < before]

    def snooze(self, due, until):
        with self.lock:
            if due.advertiser_id not in self.due or repr(self.due[due.advertiser_id]) != due.due_sk:
                return False
            self.due[due.advertiser_id] = until
            return True

    def set_deadline(self, advertiser_id, due_at):
        with self.lock:
            if self.advertisers[advertiser_id].status is CONNECTED:
                self.due[advertiser_id] = due_at

    # --- lease ---------------------------------------------------------------------------------
    def acquire_lease(self, advertiser_id, owner, now, until):
        with self.lock:
            held = self.leases.get(advertiser_id)
            if advertiser_id not in self.advertisers or (held and held[1] >= now):
                return None
            self.leases[advertiser_id] = (owner, until)
            self.fences[advertiser_id] = self.fences.get(advertiser_id, 0) + 1
            return Lease(advertiser_id, owner, self.fences[advertiser_id], until), self.advertisers[advertiser_id]

    def _holds(self, lease):
        held = self.leases.get(lease.advertiser_id)
        return bool(held) and held[0] == lease.owner and self.fences.get(lease.advertiser_id) == lease.fence

    def hold_lease(self, lease, now, until):
        with self.lock:
            if not self._holds(lease):
                return None
            self.leases[lease.advertiser_id] = (lease.owner, until)
            return replace(lease, until=until)

    def release_lease(self, lease):
        with self.lock:
            if self._holds(lease):
                del self.leases[lease.advertiser_id]

    # --- outcomes ------------------------------------------------------------------------------
    def record_refresh(self, advertiser_id, *, lease, token_expires_at, due_at, now, profiles_at=None, pending_regions=None):
        with self.lock:
            adv = self.advertisers[advertiser_id]
            if not self._holds(lease) or adv.status is not CONNECTED:
                return False
            changes = dict(token_expires_at=token_expires_at, last_refresh_at=now, updated_at=now, last_refresh_error="")
            if profiles_at is not None:
                changes.update(profiles_at=profiles_at, pending_regions=tuple(pending_regions or ()))
            self.advertisers[advertiser_id] = replace(adv, **changes)
            self.due[advertiser_id] = due_at
            return True

    def record_refresh_error(self, advertiser_id, reason, now):
        with self.lock:
            self.advertisers[advertiser_id] = replace(self.advertisers[advertiser_id], last_refresh_error=reason)

    def mark_needs_reauth(self, advertiser_id, reason, now, lease):
        with self.lock:
            if not self._holds(lease) or self.advertisers[advertiser_id].status is not CONNECTED:
                return False
            return self.set_status(advertiser_id, AdvertiserStatus.NEEDS_REAUTH, reason, now)

    def add_event(self, advertiser_id, event, cause, now):
        with self.lock:
            self.events.append(TokenEvent(advertiser_id, now, event, cause))

    def list_events(self, advertiser_id, limit=20):
        return [e for e in reversed(self.events) if e.advertiser_id == advertiser_id][:limit]

    def platform_paused_until(self, now):
        return self.paused[1] if self.paused and self.paused[1] > now else None

    def pause_platform(self, reason, now, until):
        with self.lock:
            if self.platform_paused_until(now) is not None:
                return False
            self.paused = (reason, until)
            return True


class MemoryVault:
    """Refresh and access tokens; each refresh-token version can be replaced once."""

    def __init__(self) -> None:
        self.refresh: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.access: dict[str, tuple[str, float]] = {}
        self.order: list[str] = []
        self._replaced: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def get_refresh_token(self, advertiser_id):
        with self._lock:
            if advertiser_id not in self.refresh:
                raise RefreshTokenMissing()
            return StoredRefreshToken(self.refresh[advertiser_id], self.versions[advertiser_id])

    def _store(self, advertiser_id, token):
        if advertiser_id in self.versions:
            self._replaced.add(self.versions[advertiser_id])
        self.refresh[advertiser_id], self.versions[advertiser_id] = token, f"v{next(self._ids)}"
        self.order.append("refresh")

    def put_refresh_token(self, advertiser_id, refresh_token, issued_at):
        with self._lock:
            self._store(advertiser_id, refresh_token)

    def replace_refresh_token(self, advertiser_id, refresh_token, issued_at, *, replaces, fence):
        with self._lock:
            if replaces in self._replaced or advertiser_id not in self.refresh:
                raise RefreshTokenSuperseded()
            self._store(advertiser_id, refresh_token)

    def put_access_token(self, advertiser_id, access_token, expires_at):
        with self._lock:
            self.access[advertiser_id] = (access_token, expires_at)
            self.order.append("access")

    def delete_tokens(self, advertiser_id):
        with self._lock:
            self.refresh.pop(advertiser_id, None)
            self.versions.pop(advertiser_id, None)
            self.access.pop(advertiser_id, None)


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
        store.advertisers[advertiser_id] = Advertiser(advertiser_id, f"Shop {i}", "ops@sim.example", Region.NA,
                                                      AdvertiserStatus.INVITED, now, now)
        tokens = lwa.grant(expires_at=start + rng.uniform(lead_seconds + step_seconds, lwa.lifetime))
        vault.put_refresh_token(advertiser_id, tokens.refresh_token, now)
        vault.put_access_token(advertiser_id, tokens.access_token, tokens.expires_at)
        store.record_connection(advertiser_id=advertiser_id, invitation_hash=None, profiles={},
                                pending_regions=(), token_expires_at=tokens.expires_at, now=now)
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
