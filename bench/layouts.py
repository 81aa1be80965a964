"""Figures 2 and 11: simulated days of both token layouts (``adsauth.packs``) through the real
dispatcher and worker logic on the in-memory world (``local.simulation``), what they write and
what they call, and the packed layout at 100,000 advertisers.

The per-advertiser day starts as ``simulate_day`` seeds it (advertisers in their own secrets,
tokens of random age). The packed day starts from a stack already migrated, the steady state an
agency runs in: the same advertisers are seeded, then moved into packs by
``adsauth.migrate.migrate_layout`` before the clock starts (``simulate_day(migrated=True)``); only
what happens after the start is counted. LwA's tokens are ``TOKEN_CHARS`` long, so pack sizes
are realistic.

The AWS calls are counted on the in-memory adapters the refresher uses, each call of theirs
mapped to the API calls the real adapter makes (``TABLE_CALLS``, ``SECRETS_CALLS``,
``adsauth.adapters``): the cost model's per-refresh inputs (``bench.cost``). A dispatcher run's
AWS time is modelled from its calls (``DISPATCHER_CALL_SECONDS``), one after another as the
dispatcher makes them, its snoozes ten at a time.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import replace
from statistics import mean
from typing import Any

from adsauth import schema
from adsauth.adapters.dynamo import advertiser_item
from adsauth.adapters.refresh_items import BATCH_GET_KEYS
from local.simulation import simulate_day

from bench import cost

# --- assumptions --------------------------------------------------------------------------------
# LwA's access tokens are at least 350 characters and up to 2,048 bytes; refresh tokens are of the
# same order. The simulation draws both uniformly from this range (characters, ASCII).
TOKEN_CHARS = (400, 700)
# DynamoDB reads a query page of up to 1 MB of index items, counted at their full size (the
# byExpiry index projects ALL attributes), whatever the projection expression returns; read
# units are per 4 KB, half a unit each when eventually consistent (every index read is).
QUERY_PAGE_BYTES = 1_000_000
READ_UNIT_BYTES = 4096
# What a dispatcher run waits for, call after call: a query page or an SQS SendMessageBatch
# ~10 ms, a single-item write or read (UpdateItem of a snooze, the lease, the pause) ~5 ms.
DISPATCHER_CALL_SECONDS = {"page": 0.010, "sqs:SendMessageBatch": 0.010, "single": 0.005}
# Secrets Manager's documented quota for PutSecretValue (with UpdateSecret and the replication
# calls): 50 requests per second per account and Region, not adjustable (and CreateSecret's is of
# the same order). docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html
SECRET_WRITES_QUOTA_PER_SECOND = 50
TEN_MINUTES, HOUR = 600, 3600

# Each in-memory store method as the DynamoDB calls its adapter makes (``adapters.refresh_items``,
# ``adapters.dynamo``, ``adapters.profile_items``); the ones whose count depends on their
# arguments or answer (queries, batch reads) are counted by ``CountedStore`` itself.
TABLE_CALLS: dict[str, dict[str, int]] = {
    **{name: {"dynamodb:GetItem": 1} for name in ("get_advertiser", "platform_paused_until", "lobby", "imported_grant")},
    **{name: {"dynamodb:UpdateItem": 1} for name in (
        "acquire_lease", "hold_lease", "release_lease", "record_refresh", "record_refresh_error", "note_reconsent_leads",
        "record_grant", "snooze", "set_deadline", "acquire_pack_lease", "release_pack_lease", "record_pack",
        "enter_lobby", "leave_lobby", "set_pack")},
    "add_event": {"dynamodb:PutItem": 1},
    "acquire_dispatch_lease": {"dynamodb:PutItem": 1},
    "release_dispatch_lease": {"dynamodb:DeleteItem": 1},
    "mark_needs_reauth": {"dynamodb:TransactWriteItems": 1},
    "pause_platform": {"dynamodb:PutItem": 1},
    "merge_profiles": {"dynamodb:Query": 1},  # the known profiles; none listed, nothing written
    "list_profiles": {"dynamodb:Query": 1},
}
# Each in-memory vault method as the Secrets Manager calls of ``adapters.vault`` (the pack write
# and ``put_grant`` in their usual case: a pack secret that exists; a grant's new secrets).
SECRETS_CALLS: dict[str, dict[str, int]] = {
    "get_refresh_token": {"secretsmanager:GetSecretValue": 1},
    "get_access_token": {"secretsmanager:GetSecretValue": 1},
    "read_pack": {"secretsmanager:GetSecretValue": 1},
    "replace_refresh_token": {"secretsmanager:PutSecretValue": 1},
    "put_access_token": {"secretsmanager:PutSecretValue": 1},
    "put_grant": {"secretsmanager:DescribeSecret": 2, "secretsmanager:CreateSecret": 2,
                  "secretsmanager:PutResourcePolicy": 1},
    "undo_grant": {"secretsmanager:DescribeSecret": 2, "secretsmanager:DeleteSecret": 2},
    "delete_tokens": {"secretsmanager:DeleteSecret": 2},
    "delete_pack": {"secretsmanager:DeleteSecret": 2},
}


class Recorder:
    """AWS calls by ``service:Operation``, in total and per dispatcher run."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.runs: list[Counter[str]] = []
        self.run: Counter[str] | None = None

    def add(self, operation: str, n: float = 1) -> None:
        self.calls[operation] += n
        if self.run is not None:
            self.run[operation] += n


class Counted:
    """An in-memory adapter whose calls are counted as the real adapter's API calls (a method
    not in ``mapping`` and without a counter of its own counts as ``unmapped:<name>``)."""

    def __init__(self, target: Any, recorder: Recorder, mapping: dict[str, dict[str, int]]) -> None:
        self._target, self._recorder, self._mapping = target, recorder, mapping

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute
        calls = self._mapping.get(name, {f"unmapped:{name}": 1})
        add = self._recorder.add

        def call(*args, **kwargs):
            for operation, n in calls.items():
                add(operation, n)
            return attribute(*args, **kwargs)

        self.__dict__[name] = call  # found directly from now on
        return call


class CountedStore(Counted):
    def __init__(self, target: Any, recorder: Recorder, item_bytes: int) -> None:
        super().__init__(target, recorder, TABLE_CALLS)
        self._item_bytes = item_bytes

    def acquire_dispatch_lease(self, *args, **kwargs):
        self._recorder.run = Counter()
        self._recorder.runs.append(self._recorder.run)
        self._recorder.add("dynamodb:PutItem")
        return self._target.acquire_dispatch_lease(*args, **kwargs)

    def release_dispatch_lease(self, *args, **kwargs):
        self._recorder.add("dynamodb:DeleteItem")
        self._recorder.run = None
        return self._target.release_dispatch_lease(*args, **kwargs)

    def due_advertisers(self, before):
        """One query per shard, each of as many pages as its items fill (the simulation's ids
        spread evenly over the shards: ``expiry_shard`` sums their bytes)."""
        due = self._target.due_advertisers(before)
        shards = schema.EXPIRY_SHARDS
        for shard in range(shards):
            self._pages(len(due) // shards + (shard < len(due) % shards), self._item_bytes)
        self._recorder.add("count:due_items", len(due))
        return due

    def list_packs(self):
        packs = self._target.list_packs()
        self._pages(len(packs), PACK_ITEM_BYTES)
        return packs

    def pack_pointers(self, advertiser_ids):
        self._recorder.add("dynamodb:BatchGetItem", max(1, math.ceil(len(set(advertiser_ids)) / BATCH_GET_KEYS)))
        return self._target.pack_pointers(advertiser_ids)

    def _pages(self, items: int, item_bytes: int) -> None:
        size = items * item_bytes
        self._recorder.add("dynamodb:Query", max(1, math.ceil(size / QUERY_PAGE_BYTES)))
        self._recorder.add("count:read_units", max(0.5, math.ceil(size / READ_UNIT_BYTES) * 0.5))


class CountedVault(Counted):
    def __init__(self, target: Any, recorder: Recorder) -> None:
        super().__init__(target, recorder, SECRETS_CALLS)

    def write_pack(self, kind, pack_id, base, changes):
        current = self._target.packs.get((kind, pack_id))
        if base.version is None:
            self._recorder.add("secretsmanager:CreateSecret")
            if kind == "refresh":
                self._recorder.add("secretsmanager:PutResourcePolicy")
        elif current is not None and current.version != base.version:
            # someone wrote first: the successor write is refused, read again, merged, written
            self._recorder.add("secretsmanager:PutSecretValue")
            self._recorder.add("secretsmanager:GetSecretValue")
        if base.version is not None:
            self._recorder.add("secretsmanager:PutSecretValue")
        return self._target.write_pack(kind, pack_id, base, changes)


class CountedQueue(Counted):
    """SendMessageBatch per send, and the messages (jobs) sent."""

    def __init__(self, target: Any, recorder: Recorder) -> None:
        super().__init__(target, recorder, {})

    def send(self, advertiser_ids):
        self._recorder.add("sqs:SendMessageBatch")
        self._recorder.add("count:jobs", len(advertiser_ids))
        return self._target.send(advertiser_ids)

    def send_packs(self, jobs):
        self._recorder.add("sqs:SendMessageBatch")
        self._recorder.add("count:jobs", len(jobs))
        return self._target.send_packs(jobs)


PACK_ITEM_BYTES = 120  # PACK#<id>: keys, kind keys, members, size, lease, written_at


def advertiser_item_bytes() -> int:
    """An advertiser item's size as DynamoDB counts it (names and values), for a connected one in a
    pack with its deadline and lease attributes: what every read of the byExpiry index costs."""
    from local.simulation import FakeClock, MemoryStore, MemoryVault, SimulatedLwa, seed_connected

    clock = FakeClock()
    store, vault = MemoryStore(), MemoryVault()
    tokens = SimulatedLwa(clock).grant()
    advertiser = seed_connected(store, vault, "adv-sim00000", tokens, clock(), name="Shop 0")
    item = {**advertiser_item(replace(advertiser, pack="0" * 16, last_refresh_at=clock())),
            schema.EXPIRY_INDEX_PK: "DUE#0", schema.EXPIRY_INDEX_SK: "2027-01-15T08:00:00Z",
            "lease_owner": "0" * 32, "lease_until": 1.8e9, "lease_fence": 100}
    return 100 + sum(len(name) + _value_bytes(value) for name, value in item.items())  # 100: item overhead


def _value_bytes(value) -> int:
    if isinstance(value, (list, tuple)):
        return 3 + sum(1 + _value_bytes(v) for v in value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, (int, float)) or type(value).__name__ == "Decimal":
        return 1 + (len(str(value).replace(".", "").lstrip("-")) + 1) // 2
    return len(str(value).encode())


# --- one day ------------------------------------------------------------------------------------
def max_writes(writes: list[tuple[str, float]], window: float) -> int:
    """The most writes any one secret got within ``window`` seconds (any sliding window)."""
    by_secret: dict[str, list[float]] = defaultdict(list)
    for name, at in writes:
        by_secret[name].append(at)
    most = 0
    for times in by_secret.values():
        times.sort()
        for i, at in enumerate(times):
            most = max(most, bisect_left(times, at + window, i) - i)
    return most


def simulate(advertisers: int, hours: float, layout: str, *, step_seconds: float = 60) -> tuple[dict, Recorder]:
    recorder = Recorder()
    item_bytes = advertiser_item_bytes()

    def adapters(store, vault, queue):
        return CountedStore(store, recorder, item_bytes), CountedVault(vault, recorder), CountedQueue(queue, recorder)

    result = simulate_day(advertisers, hours, step_seconds=step_seconds, layout=layout, migrated=layout == "packed",
                          token_chars=TOKEN_CHARS, adapters=adapters)
    result["item_bytes"] = item_bytes
    return result, recorder


def figures(result: dict, recorder: Recorder) -> dict:
    """The figures of one layout's day (the same names for both)."""
    n, hours = result["advertisers"], result["hours"]
    advertiser_hours = n * hours
    refreshes = result["lwa_refresh_calls"]
    calls = recorder.calls
    end = result["at_end"]
    members = end["pack_members"]
    secrets_refresher = sum(v for k, v in calls.items() if k.startswith("secretsmanager:"))
    kms_refresher = sum(v for k, v in calls.items() if k.split(":", 1)[-1] in cost.SECRETS_DATA_CALLS)
    downstream = cost.DOWNSTREAM_JOBS_PER_ADVERTISER_DAY / 24  # GetSecretValue per advertiser-hour: one per job
    per_refresh = {k: round(v / refreshes, 4) for k, v in sorted(calls.items())
                   if k.split(":")[0] in ("dynamodb", "secretsmanager", "sqs") and refreshes}
    jobs = calls.get("count:jobs", 0)
    return {
        "refreshes_per_advertiser_hour": round(refreshes / advertiser_hours, 3),
        "min_remaining_validity_minutes": round(result["min_remaining_seconds"] / 60, 1),
        "max_writes_per_secret_10min": max_writes(result["secret_writes"], TEN_MINUTES),
        "max_writes_per_secret_hour": max_writes(result["secret_writes"], HOUR),
        "advertisers_per_pack": round(mean(members), 1) if members else None,
        "secrets_per_advertiser": round(end["secrets"] / n, 4),
        "secrets_calls_per_advertiser_hour": round((secrets_refresher + advertiser_hours * downstream) / advertiser_hours, 4),
        "kms_calls_per_advertiser_hour": round((kms_refresher + advertiser_hours * downstream) / advertiser_hours, 4),
        "details": {
            "advertisers": n,
            "hours": hours,
            "step_seconds": result["step_seconds"],
            "token_chars": list(TOKEN_CHARS),
            "start": "migrated by migrate_layout before the clock started" if result["migration"]
            else "seeded in their own secrets",
            "migration": result["migration"],
            "lwa_refresh_calls": refreshes,
            "downstream_reads": result["reads"],
            "failed_jobs": result["failed_jobs"],
            "dispatcher_runs": result["dispatch_queries"],
            "secret_writes": len(result["secret_writes"]),
            "secrets": {"at_start": result["at_start"]["secrets"], "at_end": end["secrets"]},
            "packs": end["packs"],
            "advertisers_per_pack": {"mean": round(mean(members), 1), "min": min(members), "max": max(members)}
            if members else None,
            "own_secrets_share": round(end["own_secrets_advertisers"] / max(1, end["connected"]), 4),
            "secrets_calls_per_advertiser_hour": {
                "refresher": round(secrets_refresher / advertiser_hours, 4), "downstream": downstream},
            "kms_calls_per_advertiser_hour": {"refresher": round(kms_refresher / advertiser_hours, 4),
                                              "downstream": downstream},
            "aws_calls_per_refresh": per_refresh,
            "unmapped_calls": {k: v for k, v in calls.items() if k.startswith("unmapped:")},
            "refreshes_per_job": round(refreshes / jobs, 2) if jobs else 1.0,
            "due_window_share": round(calls.get("count:due_items", 0) / max(1, result["dispatch_queries"]) / n, 4),
            "advertiser_item_bytes": result["item_bytes"],
        },
    }


def days(advertisers: int, hours: float) -> dict[str, dict]:
    """Both layouts' days: {"packed": figures, "per_advertiser": figures}."""
    out = {}
    for layout in ("packed", "per_advertiser"):
        started = time.monotonic()
        result, recorder = simulate(advertisers, hours, layout)
        out[layout] = figures(result, recorder)
        out[layout]["details"]["seconds"] = round(time.monotonic() - started, 1)
    return out


# --- 100,000 advertisers --------------------------------------------------------------------------
def dispatcher_seconds(run: Counter) -> float:
    """A dispatcher run's modelled AWS time: its calls one after another, but the snoozes (the
    UpdateItems), which it makes ``SNOOZES_AT_ONCE`` at a time (``adsauth.dispatch``)."""
    from adsauth.dispatch import SNOOZES_AT_ONCE

    single = sum(run.get(k, 0) for k in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"))
    snoozes = math.ceil(run.get("dynamodb:UpdateItem", 0) / SNOOZES_AT_ONCE)
    return (run.get("dynamodb:Query", 0) * DISPATCHER_CALL_SECONDS["page"]
            + run.get("sqs:SendMessageBatch", 0) * DISPATCHER_CALL_SECONDS["sqs:SendMessageBatch"]
            + (single + snoozes) * DISPATCHER_CALL_SECONDS["single"])


def scale(advertisers: int, hours: float, *, step_seconds: float = 60) -> dict:
    """The packed layout's day at ``advertisers`` (the same simulation as ``days``)."""
    started = time.monotonic()
    result, recorder = simulate(advertisers, hours, "packed", step_seconds=step_seconds)
    day = figures(result, recorder)
    longest = max(range(len(recorder.runs)), key=lambda i: dispatcher_seconds(recorder.runs[i]))
    run = recorder.runs[longest]
    writes_per_step = Counter(at for _name, at in result["secret_writes"])
    peak_writes = max(writes_per_step.values(), default=0)
    peak_lwa = max(result["lwa_calls_per_step"], default=0)
    return {
        "advertisers": advertisers,
        "hours": hours,
        "step_seconds": step_seconds,
        "refreshes_per_advertiser_hour": day["refreshes_per_advertiser_hour"],
        "min_remaining_validity_minutes": day["min_remaining_validity_minutes"],
        "dispatcher_longest_run_python_seconds": round(max(result["dispatch_seconds"]), 3),
        "dispatcher_longest_run_modelled_aws_seconds": round(dispatcher_seconds(run), 3),
        "peak_secret_writes_per_second": round(peak_writes / step_seconds, 2),
        "peak_lwa_calls_per_second": round(peak_lwa / step_seconds, 1),
        "max_writes_per_secret_10min": day["max_writes_per_secret_10min"],
        "max_writes_per_secret_hour": day["max_writes_per_secret_hour"],
        "details": {
            **{k: day["details"][k] for k in ("token_chars", "start", "migration", "lwa_refresh_calls", "downstream_reads",
                                               "failed_jobs", "dispatcher_runs", "packs", "advertisers_per_pack",
                                               "own_secrets_share", "advertiser_item_bytes", "due_window_share")},
            "secret_writes_quota_per_second": SECRET_WRITES_QUOTA_PER_SECOND,
            "peak_secret_writes_per_step": peak_writes,
            "peak_lwa_calls_per_step": peak_lwa,
            "rates_per_second": "per simulated step: the step's calls spread over its seconds (the workers drain "
                                "a step's queue as fast as their concurrency lets them, so the first seconds peak higher)",
            "dispatcher_python_seconds": {"mean": round(mean(result["dispatch_seconds"]), 3),
                                          "max": round(max(result["dispatch_seconds"]), 3)},
            "dispatcher_longest_run": {
                "due_items_read": int(run.get("count:due_items", 0)),
                "query_pages": int(run.get("dynamodb:Query", 0)),
                "read_units": run.get("count:read_units", 0),
                "send_message_batch": int(run.get("sqs:SendMessageBatch", 0)),
                "update_item": int(run.get("dynamodb:UpdateItem", 0)),
                "other_single_item_calls": int(sum(run.get(k, 0) for k in (
                    "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"))),
                "call_seconds": DISPATCHER_CALL_SECONDS,
            },
            "dispatcher_modelled_aws_seconds_mean": round(mean(dispatcher_seconds(r) for r in recorder.runs), 3),
            "seconds": round(time.monotonic() - started, 1),
        },
    }
