"""``python -m adsauth migrate-layout --to packed|per_advertiser``: move a running stack's tokens
to the layout its functions were deployed with (``token_layout`` in ``cdk.json``), now.

The stack converges by itself anyway (in the packed layout an advertiser of its own secrets joins
a pack at a pack's next job; in the per-advertiser layout a pack's members move out at their next
refresh); this does it at once, through the same pack jobs the worker runs (``Refresher.refresh_pack``),
so every move keeps its order: the new place is written before the advertiser's pointer names it,
and the old one is removed only after the pointer moved. Downstream reads find a token throughout.
Each advertiser moved costs one LwA refresh (its tokens are renewed on the way, so the members of
a pack share one deadline from the start).

Safe to run again, or while the dispatcher runs: each job holds the pack's and each advertiser's
lease, and what is already in place is left alone.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from adsauth import packs
from adsauth.errors import AdsAuthError
from adsauth.models import AdvertiserStatus

AT_ONCE = 10  # LwA calls in flight, as one worker invocation


class LayoutMismatch(AdsAuthError):
    code = "layout_mismatch"
    message = ("The stack's functions use the other token layout: set token_layout in cdk.json to the layout "
               "you migrate to, deploy, then run migrate-layout again.")


def migrate_layout(refresher, to: str, *, pack_size: int | None = None,
                   progress: Callable[[str], None] = lambda _line: None) -> dict:
    """Move every connected advertiser to layout ``to``; returns what happened (counts by outcome,
    the advertisers not moved)."""
    if to not in packs.LAYOUTS:
        raise ValueError(f"to must be one of {', '.join(packs.LAYOUTS)}")
    if refresher.settings.token_layout != to:
        raise LayoutMismatch()
    store = refresher.store

    def placed() -> int:
        return sum(1 for a in store.list_advertisers()
                   if a.status is AdvertiserStatus.CONNECTED and bool(a.pack) == (to == "packed"))

    before = placed()
    outcomes: Counter[str] = Counter()
    not_moved: list[str] = []
    with ThreadPoolExecutor(max_workers=AT_ONCE, thread_name_prefix="migrate") as pool:
        def run_all(f, items):
            return list(pool.map(f, items))

        def run(job: packs.PackJob) -> list:
            results = refresher.refresh_pack(job, force=to == "per_advertiser", run_all=run_all)
            for result in results:
                outcomes[result.outcome] += 1
            progress(f"pack {job.pack_id}: {sum(r.outcome == 'refreshed' for r in results)} of {len(results)} moved")
            return results

        if to == "packed":
            _to_packs(refresher, run, pack_size, not_moved)
        else:
            for job in _leaving_jobs(refresher):
                not_moved.extend(r.advertiser_id for r in run(job) if r.outcome != "refreshed")
    remaining = [a.advertiser_id for a in store.list_advertisers()
                 if a.status is AdvertiserStatus.CONNECTED and bool(a.pack) != (to == "packed")]
    return {"to": to, "moved": max(0, placed() - before), "outcomes": dict(sorted(outcomes.items())),
            "not_moved": sorted(set(not_moved) | set(remaining)), "packs": len(store.list_packs())}


def _to_packs(refresher, run, pack_size: int | None, not_moved: list[str]) -> None:
    """Advertisers of their own secrets into new packs, soonest deadline first. A job admits as
    many as fit (``pack_refresh``); those left over go first into the next pack, and without
    ``pack_size`` the next packs are cut to what the last one took."""
    store = refresher.store
    waiting = [a.advertiser_id for a in sorted(
        (a for a in store.list_advertisers() if a.status is AdvertiserStatus.CONNECTED and not a.pack),
        key=lambda a: a.token_expires_at or 0.0)]
    size = max(1, min(pack_size or packs.MAX_MEMBERS, packs.MAX_MEMBERS))
    while waiting:
        chunk, waiting = waiting[:size], waiting[size:]
        job = packs.PackJob(packs.new_pack_id(), (), tuple(chunk))
        run(job)
        pointers = store.pack_pointers(chunk)
        joined = [a for a in chunk if pointers.get(a) == (AdvertiserStatus.CONNECTED, job.pack_id)]
        left = [a for a in chunk if pointers.get(a) == (AdvertiserStatus.CONNECTED, "")]
        not_moved.extend(a for a in chunk if a not in joined and a not in left)
        if not joined:  # not even one fits a new pack: they stay where they are
            not_moved.extend(left)
            continue
        if not pack_size:
            size = len(joined)
        waiting = left + waiting


def _leaving_jobs(refresher):
    store = refresher.store
    for info in store.list_packs():
        named = refresher.vault.read_pack("refresh", info.pack_id).entries
        pointers = store.pack_pointers(sorted(named))
        members = [a for a, (status, pack) in pointers.items()
                   if pack == info.pack_id and status is AdvertiserStatus.CONNECTED]
        for start in range(0, len(members), packs.MAX_MEMBERS):
            yield packs.PackJob(info.pack_id, tuple(members[start:start + packs.MAX_MEMBERS]))
