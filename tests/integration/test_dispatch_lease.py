"""The dispatcher run's lease against moto, through the real dispatcher handler: overlapping and
concurrent runs queue every due advertiser once, a skipped run returns normally and counts
``DispatchSkipped``, a run that outlived its lease cannot end its successor's, and the store's
transitions behave the same on DynamoDB (moto) as on ``local.memory``.

The lease does not depend on the token layout, but how a run queues does (in the packed layout,
advertisers of their own secrets go out as pack jobs, ``adsauth.packs``): the tests that count
batches and wrap ``queue.send`` run the per-advertiser layout; one runs both."""

from __future__ import annotations

import json
import threading
import time
import uuid

import boto3
import pytest

from adsauth import packs, schema, wiring
from adsauth.adapters.dynamo import expiry_shard, iso
from adsauth.adapters.notify import job_advertiser
from adsauth.adapters.table import DISPATCH_LEASE_KEY
from adsauth.dispatch import DISPATCH_LEASE_SECONDS, SQS_BATCH
from local.gateway import LambdaContext
from local.memory import MemoryStore
from local.stack import TABLE_NAME
from tests.overlap import overlapping_runs
from tests.stack_fixtures import ShiftClock

DUE = 23  # three SQS batches


def table():
    return boto3.resource("dynamodb").Table(TABLE_NAME)


def lease_item() -> dict | None:
    return table().get_item(Key=DISPATCH_LEASE_KEY, ConsistentRead=True).get("Item")


@pytest.fixture
def layout(request) -> str:
    """The token layout of the test (parametrize ``indirect``); per-advertiser by default."""
    return getattr(request, "param", "per_advertiser")


@pytest.fixture
def due(stack, layout):  # the local stack's moto writes atomically (local.moto_patches)
    """``DUE`` connected advertisers whose deadline has passed (and no other in the due index),
    an empty refresh queue, the app in ``layout`` on a clock the test moves; all removed afterwards."""
    with stack.environment(TOKEN_LAYOUT=layout):
        yield from _due(stack)


def _due(stack):
    for shard in range(schema.EXPIRY_SHARDS):
        for entry in table().query(IndexName=schema.EXPIRY_INDEX, KeyConditionExpression="due_pk = :p",
                                   ExpressionAttributeValues={":p": f"DUE#{shard}"})["Items"]:
            table().update_item(Key=schema.advertiser_key(entry["advertiser_id"]), UpdateExpression="REMOVE due_pk, due_sk")
    stack.scheduler().clear()
    table().delete_item(Key=DISPATCH_LEASE_KEY)
    clock = ShiftClock()
    wiring.clock = clock
    run = uuid.uuid4().hex[:6]
    ids = [f"adv-lease{run}{i:02d}" for i in range(DUE)]
    for advertiser_id in ids:
        table().put_item(Item={
            **schema.advertiser_key(advertiser_id), "advertiser_id": advertiser_id, "status": "connected",
            schema.EXPIRY_INDEX_PK: expiry_shard(advertiser_id), schema.EXPIRY_INDEX_SK: iso(clock() - 60),
        })
    wiring.refresher.cache_clear()
    yield ids, clock
    wiring.clock = time.time
    wiring.refresher.cache_clear()
    for advertiser_id in ids:
        table().delete_item(Key=schema.advertiser_key(advertiser_id))
    table().delete_item(Key=DISPATCH_LEASE_KEY)
    stack.scheduler().clear()


def queued(stack) -> list[str]:
    """The advertisers of every job in the refresh queue, a pack job's each (the queue is emptied)."""
    sqs, found = boto3.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            job = packs.parse_pack_job(json.loads(m["Body"]))
            found.extend(job.advertisers() if job else [job_advertiser(m["Body"])])
        sqs.delete_message_batch(QueueUrl=stack.queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    return found


def invoke(remaining_seconds: float = 60) -> dict:
    from adsauth.handlers import dispatcher

    return dispatcher.handler({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}},
                              LambdaContext("adsauth-local-dispatcher", "us-east-1", time.monotonic() + remaining_seconds))


def metric_values(out: str, name: str) -> list:
    values = []
    for line in out.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if isinstance(blob, dict) and name in blob and "_aws" in blob:
            values.extend(blob[name] if isinstance(blob[name], list) else [blob[name]])
    return values


def test_a_run_overlapping_another_queues_nothing_and_returns_normally(stack, due, monkeypatch, capsys):
    ids, _clock = due
    send, second, started = wiring.refresher().queue.send, [], threading.Event()

    def send_then_overlap(advertiser_ids) -> None:
        send(advertiser_ids)
        if not started.is_set():  # the next minute's run (or an EventBridge retry) starts now, once
            started.set()
            runner = threading.Thread(target=lambda: second.append(invoke()))
            runner.start()
            runner.join()

    monkeypatch.setattr(wiring.refresher().queue, "send", send_then_overlap)
    capsys.readouterr()
    first = invoke()
    assert sorted(queued(stack)) == sorted(ids)  # each once: the old code queued the first batch twice
    assert first["dispatched"] == DUE
    assert second == [{"dispatched": 0, "events_relayed": 0, "skipped": True}]
    assert 1 in metric_values(capsys.readouterr().out, "DispatchSkipped")
    assert lease_item() is None  # released


@pytest.mark.parametrize("layout", ["per_advertiser", "packed"], indirect=True)
def test_runs_one_after_the_other_both_run(stack, due):
    ids, clock = due
    assert invoke()["dispatched"] == DUE and lease_item() is None
    clock.offset += 60
    assert invoke() == {"dispatched": 0, "events_relayed": 0}  # snoozed: nothing left to queue
    assert sorted(queued(stack)) == sorted(ids)


def test_concurrent_runs_queue_each_advertiser_once(stack, due, monkeypatch):
    """Four invocations released at once on threads; the one holding the lease sends only after
    the three others have returned."""
    ids, _clock = due
    runs = 4
    results = overlapping_runs(runs, invoke, wiring.refresher().queue, monkeypatch)
    assert sorted(r["dispatched"] for r in results) == [0] * (runs - 1) + [DUE]
    assert sum(bool(r.get("skipped")) for r in results) == runs - 1
    assert sorted(queued(stack)) == sorted(ids) and lease_item() is None


def test_a_run_whose_lease_lapsed_stops_and_cannot_end_its_successors_lease(stack, due, monkeypatch):
    ids, clock = due
    send, calls = wiring.refresher().queue.send, []

    def stall_past_the_lease(advertiser_ids) -> None:
        send(advertiser_ids)
        calls.append(len(advertiser_ids))
        if len(calls) == 1:  # the run freezes past its lease; a newer run takes the lapsed lease
            clock.offset += DISPATCH_LEASE_SECONDS + 1
            assert wiring.store().acquire_dispatch_lease("run-b", clock(), clock() + 60)

    monkeypatch.setattr(wiring.refresher().queue, "send", stall_past_the_lease)
    assert invoke()["dispatched"] == SQS_BATCH and calls == [SQS_BATCH]
    assert lease_item()["lease_owner"] == "run-b"  # the stale run's release was refused
    assert len(queued(stack)) == SQS_BATCH


def test_a_crashed_runs_lease_lapses_and_a_paused_platform_takes_no_lease(stack, due):
    from adsauth.adapters.table import PLATFORM_KEY

    ids, clock = due
    assert wiring.store().acquire_dispatch_lease("crashed", clock(), clock() + 30)
    assert invoke()["skipped"] is True and queued(stack) == []
    clock.offset += 30
    try:
        assert wiring.store().pause_platform("invalid_client", clock(), clock() + 900)
        assert invoke() == {"dispatched": 0, "events_relayed": 0}  # paused: no lease taken, nothing queued
        assert lease_item()["lease_owner"] == "crashed"
    finally:
        table().delete_item(Key=PLATFORM_KEY)
    assert invoke()["dispatched"] == DUE and sorted(queued(stack)) == sorted(ids)


def test_the_lease_item_is_the_documented_key_with_an_expiry_inside_the_invocation(stack, due, monkeypatch):
    seen = []
    monkeypatch.setattr(wiring.refresher().queue, "send", lambda _ids: seen.append(lease_item()))
    invoke()
    item = seen[0]
    assert {k: item[k] for k in ("pk", "sk")} == {"pk": "PLATFORM#dispatch", "sk": "LEASE"}
    assert set(item) == {"pk", "sk", "type", "lease_owner", "lease_until", "ttl"}
    assert 0 < float(item["lease_until"]) - due[1]() <= DISPATCH_LEASE_SECONDS


def test_the_lease_ends_when_the_invocation_would(stack, due, monkeypatch):
    """An invocation with 5 s left (a retry late in its window) holds the lease for those 5 s."""
    seen = []
    monkeypatch.setattr(wiring.refresher().queue, "send", lambda _ids: seen.append(lease_item()))
    started = due[1]()
    invoke(remaining_seconds=5)
    assert 4 < float(seen[0]["lease_until"]) - started <= 5


@pytest.mark.parametrize("kind", ["dynamo", "memory"])
def test_the_store_transitions_agree_on_dynamodb_and_in_memory(stack, due, kind):
    store = wiring.store() if kind == "dynamo" else MemoryStore()
    now = 1000.0
    steps = [
        store.release_dispatch_lease("a"),  # absent: refused
        store.acquire_dispatch_lease("a", now, now + 60),  # absent: taken
        store.acquire_dispatch_lease("b", now + 59, now + 119),  # held, unexpired: refused
        store.release_dispatch_lease("b"),  # a non-owner: refused
        store.acquire_dispatch_lease("a", now + 1, now + 61),  # its own retry: taken
        store.acquire_dispatch_lease("b", now + 61, now + 121),  # lapsed at its expiry: taken
        store.release_dispatch_lease("a"),  # the lapsed owner: refused
        store.release_dispatch_lease("b"),  # the owner: released
        store.release_dispatch_lease("b"),  # absent again: refused
    ]
    assert steps == [False, True, False, False, True, True, False, True, False]
