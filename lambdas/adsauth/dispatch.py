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
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from adsauth import packs
from adsauth.models import DueAdvertiser, DueSchedule
from adsauth.ports import RefreshQueue, RefreshStore

SQS_BATCH = 10
SNOOZES_AT_ONCE = 10
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
    layout: str = "per_advertiser",
) -> int | None:
    """How many advertisers were queued; None when another run holds the lease. ``on_due`` sees
    the ones due now first (the dispatcher reports the oldest token among them). A pack is one
    job (``packs.plan``): its members due within the alignment window ride along."""
    if store.platform_paused_until(now) is not None:
        return 0  # LwA refused our client: the run stops instead of hammering it
    if queue is None:
        raise RuntimeError("no refresh queue is configured (REFRESH_QUEUE_URL)")
    owner, started = uuid.uuid4().hex, clock()
    if not store.acquire_dispatch_lease(owner, now, now + lease_seconds):
        return None
    try:
        horizon = now + schedule.lead_seconds
        window = list(store.due_advertisers(horizon + packs.ALIGN_SECONDS))
        due = [d for d in window if d.due_at < horizon]
        if on_due is not None:
            on_due(due)
        triggered = any(d.pack for d in due)
        joining = layout == "packed" and (triggered or any(not d.pack for d in due))
        lobby = store.lobby() if joining and triggered else []
        alone, jobs = packs.plan(window, horizon, layout, store.list_packs() if joining else None, lobby)
        entries = {d.advertiser_id: d for d in window}
        waiting = set(lobby)  # a joiner in the lobby leaves it, whether it is due or not
        taken = [a for job in jobs for a in job.joiners if a in waiting]
        snooze_until = horizon + schedule.redispatch_seconds
        queued = 0
        units: list[list[str] | packs.PackJob] = [alone[i : i + SQS_BATCH] for i in range(0, len(alone), SQS_BATCH)]
        units += [jobs[i : i + SQS_BATCH] for i in range(0, len(jobs), SQS_BATCH)]
        for chunk in units:
            if clock() - started >= lease_seconds:
                break  # our lease has lapsed: a newer run may be queueing these right now
            if chunk and isinstance(chunk[0], packs.PackJob):
                queue.send_packs(chunk)
                ids = [a for job in chunk for a in job.advertisers()]
            else:
                queue.send(chunk)
                ids = chunk
            queued += len(ids)
            # after sending: a lost snooze costs a duplicate, never a refresh. At once, a batch
            # at a time: at 100,000 advertisers a run snoozes ~2,000 (one conditional write each)
            snoozes = [entries[a] for a in ids if a in entries]
            if len(snoozes) > 1:
                with ThreadPoolExecutor(max_workers=SNOOZES_AT_ONCE, thread_name_prefix="snooze") as pool:
                    list(pool.map(lambda entry: store.snooze(entry, snooze_until), snoozes))
            else:
                for entry in snoozes:
                    store.snooze(entry, snooze_until)
        if taken:  # after sending: one that stays in the lobby is just taken again
            store.leave_lobby(taken)
        return queued
    finally:
        store.release_dispatch_lease(owner)
