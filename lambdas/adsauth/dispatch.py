"""The dispatcher's run: queue every connected advertiser that is due, under the dispatch lease.

Runs may overlap (no reserved concurrency: an EventBridge retry, a slow run meeting the
next minute's), so a run first takes the dispatch lease, one table item, with one
conditional write; ``lease_seconds`` bounds it by what is left of the invocation, so a
run that dies holding it (a timeout, a crash) lets it lapse by itself. The lease's
transitions, each one conditional write (``adapters.refresh_items``, mirrored by
``local.memory``):

========================== ================================ ===========================
lease before               run R does                       lease after
========================== ================================ ===========================
absent                     take (R, now + lease_seconds)    held by R
held by Q, lapsed (≤ now)  take                             held by R
held by R (its own retry)  take                             held by R, new expiry
held by Q, unexpired       take: refused                    held by Q; R queues nothing
held by R                  release (owner R)                absent
held by Q, or absent       release: refused                 unchanged
========================== ================================ ===========================

A paused platform (``invalid_client``) is read first: such a run writes nothing, not
even the lease. A run that outlives its lease (a frozen invocation) stops queueing at
its next batch, since a newer run may hold the lease by then; what it queued already is
a harmless duplicate (a worker refreshes only what is due, under the advertiser's lease).
"""

from __future__ import annotations

import uuid
from typing import Callable

from adsauth.models import DueAdvertiser, DueSchedule
from adsauth.ports import RefreshQueue, RefreshStore

SQS_BATCH = 10
DISPATCH_LEASE_SECONDS = 60.0  # the dispatcher's timeout: without a context, a run's lease lasts that long


def dispatch_due(
    store: RefreshStore,
    queue: RefreshQueue | None,
    schedule: DueSchedule,
    clock: Callable[[], float],
    now: float,
    *,
    on_due: Callable[[list[DueAdvertiser]], None] | None = None,
    lease_seconds: float = DISPATCH_LEASE_SECONDS,
) -> int | None:
    """How many advertisers were queued; None when another run holds the lease. ``on_due`` sees
    them first (the dispatcher reports the oldest token among them)."""
    if store.platform_paused_until(now) is not None:
        return 0  # LwA refused our client: the run stops instead of hammering it
    if queue is None:
        raise RuntimeError("no refresh queue is configured (REFRESH_QUEUE_URL)")
    owner, started = uuid.uuid4().hex, clock()
    if not store.acquire_dispatch_lease(owner, now, now + lease_seconds):
        return None
    try:
        due = list(store.due_advertisers(now + schedule.lead_seconds))
        if on_due is not None:
            on_due(due)
        snooze_until = now + schedule.lead_seconds + schedule.redispatch_seconds
        queued = 0
        for start in range(0, len(due), SQS_BATCH):
            if clock() - started >= lease_seconds:
                break  # our lease has lapsed: a newer run may be queueing these right now
            chunk = due[start : start + SQS_BATCH]
            queue.send([d.advertiser_id for d in chunk])
            queued += len(chunk)
            for entry in chunk:  # after sending: a lost snooze costs a duplicate, never a refresh
                store.snooze(entry, snooze_until)
        return queued
    finally:
        store.release_dispatch_lease(owner)
