"""Packed token secrets: many advertisers share one refresh-token secret and one access-token
secret (``token_layout: "packed"``, the default), so an agency pays for a few secrets per hundred
advertisers instead of two per advertiser.

Layout
------
A pack ``P`` is two secrets, ``<prefix>refresh/packs/<P>`` (read only by the callback/import and
the refresher, as every refresh-token secret) and ``<prefix>access/packs/<P>`` (read by
downstream), plus one table item ``PACK#<P>`` (its lease, member count and size). An advertiser id
never holds a ``/``, so a pack's name never meets an advertiser's own ``refresh/<id>``. Each value
is JSON: ``{"v": 1, "entries": {advertiser: entry}}``; a refresh entry is ``{"r": token, "i":
issued_at, "f": fence, "v": version}``, an access entry ``{"a": token, "e": expires_at, "v":
version}``. The advertiser item's ``pack`` attribute says where its tokens are: absent, its own
secrets (a new grant always lands there: the callback never writes a shared secret).

Writes, and why a token is never overwritten by an older one
-------------------------------------------------------------
Every write of a pack secret names its new version after the one it read (``VersionId =
uuid5(previous)``, as the per-advertiser secrets do), so of two writers that read one version only
the first succeeds. The second re-reads and merges: each of its changes (a new entry, a removed
one) is applied only where the entry is still the one it started from (``v`` unchanged), and
dropped where someone else changed it meanwhile (``merge``). So every entry follows the
per-advertiser rule on its own: of two refreshes that started from one token, the later write
loses, and a removal (a revoke) is never undone by a writer that read the pack before it.

Secrets Manager asks for no more than one PutSecretValue per secret every 10 minutes, sustained.
A pack is refreshed as one job: the dispatcher queues a pack when a member is due, with every
member due within ``ALIGN_SECONDS`` more (``plan``), so the members of a pack come to share one
deadline and the access secret is written once per refresh cycle (~48 minutes); the refresh secret
only when a token rotated or a member came or went. New connections join a pack whose job runs
anyway (those due within the window are refreshed with it), so joining costs no extra write.

Membership transitions (``Refresher.refresh_pack``): an entry is written before the advertiser's
``pack`` points at it and removed only after the pointer moved away, so a downstream read always
finds a token (``adsauth.client`` falls back to the other place once).

============================ ===================================== ==================================
advertiser                   pack job does                         then
============================ ===================================== ==================================
own secrets, due (joiner)    LwA; entry into the pack; ``pack=P``  own secrets deleted
member, due                  LwA; entry replaced                   deadline moved
member, per-advertiser       own secrets written; ``pack`` removed entry removed
member, re-consented (own)   —                                     entry removed
member, revoked              (revoke removed the entries at once)  —
value over ``VALUE_LIMIT``   newest members moved to own secrets   as per-advertiser
============================ ===================================== ==================================
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Mapping, Sequence

LAYOUTS = ("packed", "per_advertiser")
DEFAULT_LAYOUT = "packed"
VALUE_LIMIT = 65_536  # Secrets Manager's limit for a secret value
# A pack takes new members while its larger value stays under this; the rest is room for tokens
# that grow when they rotate (LwA tokens are 350 to 2,048 bytes). Past VALUE_LIMIT members move out.
ADMIT_BYTES = 49_152
# a member's larger entry, planned before its size is known: LwA tokens are 350 to 2,048 bytes, most
# near the low end. Planning optimistically costs nothing: a job admits a joiner only while the
# real values stay under ADMIT_BYTES, and one it cannot take stays in its own secrets (the lobby).
NEW_ENTRY_BYTES = 600
MAX_MEMBERS = 100  # also bounds one job's LwA calls (a worker invocation refreshes the whole pack)
# A pack's job also refreshes the members due within this after the first one (and takes in
# advertisers of their own secrets due within it): members due further apart than this are
# written apart, so never twice in 10 minutes.
ALIGN_SECONDS = 660
LOBBY_LIMIT = 2_000  # advertisers waiting to join, in one table item (ids of up to 64 characters)
PACK_LEASE_SECONDS = 150  # longer than the worker runs (its timeout: infra.constants.WORKER_TIMEOUT)
# a pack job starts no refresh with less than this left of its invocation: one LwA call with its
# retries, then the pack's writes and the advertisers' records (adsauth.handlers.worker)
PACK_MARGIN_SECONDS = 40.0


def refresh_name(prefix: str, pack_id: str) -> str:
    return f"{prefix}refresh/packs/{pack_id}"


def access_name(prefix: str, pack_id: str) -> str:
    return f"{prefix}access/packs/{pack_id}"


def new_pack_id() -> str:
    return uuid.uuid4().hex[:16]


def entry_version() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class PackValue:
    """One pack secret as read: its secret version (None: not created yet) and its entries."""

    version: str | None
    entries: Mapping[str, dict] = field(default_factory=dict, repr=False)

    def size(self) -> int:
        return len(encode(self.entries))


def encode(entries: Mapping[str, dict]) -> str:
    return json.dumps({"v": 1, "entries": dict(entries)}, separators=(",", ":"), sort_keys=True)


def decode(text: str | None) -> dict[str, dict]:
    """The entries of a pack value; a malformed value reads as empty (never quoted in an error)."""
    try:
        entries = json.loads(text or "")["entries"]
    except (KeyError, TypeError, ValueError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, dict)}


def refresh_entry(token: str, issued_at: float, fence: int) -> dict:
    return {"r": token, "i": issued_at, "f": fence, "v": entry_version()}


def access_entry(token: str, expires_at: float) -> dict:
    return {"a": token, "e": expires_at, "v": entry_version()}


def _version(entry: dict | None) -> str | None:
    return None if entry is None else str(entry.get("v"))


def merge(base: Mapping[str, dict], current: Mapping[str, dict],
          changes: Mapping[str, dict | None]) -> tuple[dict[str, dict], set[str]]:
    """Apply ``changes`` (advertiser → new entry, or None to remove it), made against ``base``, to
    ``current``: each only where ``current`` still holds ``base``'s entry. Returns the merged
    entries and the advertisers whose change was dropped (someone changed their entry first)."""
    merged, dropped = dict(current), set()
    for advertiser_id, entry in changes.items():
        if _version(current.get(advertiser_id)) != _version(base.get(advertiser_id)):
            dropped.add(advertiser_id)
            continue
        if entry is None:
            merged.pop(advertiser_id, None)
        else:
            merged[advertiser_id] = entry
    return merged, dropped


@dataclass(frozen=True)
class PackInfo:
    """A pack's table item: how many members it has and its larger value's size in bytes."""

    pack_id: str
    members: int = 0
    size: int = 0

    def room(self) -> int:
        """About how many more members it takes: by its members' average size (a new pack: by
        ``NEW_ENTRY_BYTES``); the job checks the real sizes (``ADMIT_BYTES``) before it admits one."""
        per_member = self.size / self.members if self.members else NEW_ENTRY_BYTES
        by_bytes = int((ADMIT_BYTES - self.size) // max(per_member, 1.0))
        return max(0, min(MAX_MEMBERS - self.members, by_bytes))


PACK_ID = re.compile(r"^[0-9a-f]{16}$")
_ADVERTISER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class PackJob:
    """One refresh job for a pack: its members to refresh (due within the window) and the
    advertisers of their own secrets that join it. Ids only, as every job."""

    pack_id: str
    members: tuple[str, ...] = ()
    joiners: tuple[str, ...] = ()

    def body(self) -> str:
        return json.dumps({"pack": self.pack_id, "members": list(self.members), "joiners": list(self.joiners)})

    def advertisers(self) -> tuple[str, ...]:
        return self.members + self.joiners


def parse_pack_job(job: object) -> PackJob | None:
    """A pack job from a decoded message body, or None when it is not a well-formed one."""
    if not isinstance(job, dict) or not isinstance(job.get("pack"), str) or not PACK_ID.fullmatch(job["pack"]):
        return None
    lists = [job.get("members", []), job.get("joiners", [])]
    if not all(isinstance(ids, list) and len(ids) <= MAX_MEMBERS for ids in lists):
        return None
    if not all(isinstance(i, str) and _ADVERTISER_ID.fullmatch(i) for ids in lists for i in ids):
        return None
    return PackJob(job["pack"], tuple(dict.fromkeys(lists[0])), tuple(i for i in dict.fromkeys(lists[1]) if i not in lists[0]))


def plan(due: Sequence, horizon: float, layout: str, packs: Sequence[PackInfo] | None,
         lobby: Sequence[str] = ()) -> tuple[list[str], list[PackJob]]:
    """What a dispatcher run queues, from the advertisers whose deadline is before ``horizon +
    ALIGN_SECONDS`` (``due``: ``DueAdvertiser``s in deadline order) and, when joining is
    possible, the packs there are and the lobby (advertisers of their own secrets refreshed
    alone since, waiting for a pack with room). Returns (advertisers queued alone, pack jobs):

    - a pack with a member due before ``horizon`` is one job, with every member in ``due``;
    - packed layout: while such a pack has room, advertisers of their own secrets join it: those
      in ``due`` first, then the lobby's (a joiner is refreshed in the job whatever its deadline,
      so it shares the pack's from then on); those due before ``horizon`` that none took found new
      packs when no pack has room at all, else they are refreshed alone (and wait in the lobby);
    - an advertiser of its own secrets not taken in is queued alone when due before ``horizon``.
    """
    triggered = sorted({d.pack for d in due if d.pack and d.due_at < horizon})
    members: dict[str, list[str]] = {p: [] for p in triggered}
    for d in due:
        if d.pack in members:
            members[d.pack].append(d.advertiser_id)
    own = [d for d in due if not d.pack]
    joiners: dict[str, list[str]] = {p: [] for p in triggered}
    alone: list[str] = []
    founded: list[PackJob] = []
    if layout == "packed" and packs is not None:
        info = {p.pack_id: p for p in packs}
        seen = {d.advertiser_id for d in due}
        waiting = [d.advertiser_id for d in own] + [a for a in dict.fromkeys(lobby) if a not in seen]
        for pack_id in triggered:
            room = info.get(pack_id, PackInfo(pack_id)).room()
            joiners[pack_id], waiting = waiting[:room], waiting[room:]
        left = set(waiting)
        now_due = [d.advertiser_id for d in own if d.due_at < horizon and d.advertiser_id in left]
        if any(p.room() > 0 for p in packs if p.pack_id not in members):
            alone = now_due  # a pack with room runs within a cycle: they join it from the lobby
        else:
            size = PackInfo("").room()
            founded = [PackJob(new_pack_id(), (), tuple(now_due[i:i + size])) for i in range(0, len(now_due), size)]
    else:
        alone = [d.advertiser_id for d in own if d.due_at < horizon]
    jobs = [PackJob(p, tuple(members[p]), tuple(joiners[p])) for p in triggered] + founded
    return alone, jobs
