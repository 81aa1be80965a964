"""The refresher end to end: the real dispatcher and worker handlers, run by ``LocalScheduler``
against moto (table, secrets, SQS with its DLQ, SNS) and the LwA/Ads emulator, with time travel
shared by the app and the emulator. Token values are compared, never printed.

The stack runs the packed token layout (``adsauth.packs``): a refresh may move an advertiser's
tokens into a pack, so tests about refresh behaviour look them up wherever they are
(``local.stack.stored_tokens``); tests about the per-advertiser secrets themselves (their names,
version ids) run with ``TOKEN_LAYOUT=per_advertiser`` (``per_advertiser``)."""

from __future__ import annotations

import json
import threading
import time
import uuid

import boto3
import pytest

from adsauth import packs, schema, wiring
from adsauth.adapters.table import PLATFORM_KEY
from adsauth.adapters.vault import successor_version
from adsauth.errors import RefreshTokenSuperseded
from local.emulator import DEFAULT_PROFILES, DEFAULT_USER
from local.stack import CLIENT_ID, SECRET_PREFIX, TABLE_NAME
from tests.conftest import remember
from tests.stack_fixtures import into_a_new_pack, reauthorize, secret_names
from tests.stack_fixtures import refresh_token_accepted as accepted
from tests.stack_fixtures import remembered_tokens as tokens

REFRESH = {"endpoint": "token", "grant_type": "refresh_token"}


def table():
    return boto3.resource("dynamodb").Table(TABLE_NAME)


def item(advertiser_id: str) -> dict:
    return table().get_item(Key=schema.advertiser_key(advertiser_id), ConsistentRead=True)["Item"]


def secret(kind: str, advertiser_id: str) -> dict:
    response = boto3.client("secretsmanager").get_secret_value(SecretId=f"{SECRET_PREFIX}{kind}/{advertiser_id}")
    value = json.loads(response["SecretString"])
    remember(*(v for v in value.values() if isinstance(v, str)))
    return {**value, "version": response["VersionId"]}


def refresh_calls(stack, region: str | None = None) -> int:
    return stack.emulator.count("token", region=region, grant_type="refresh_token")


def emulator_tokens(stack) -> set[str]:
    with stack.emulator._lock:
        return set(stack.emulator._refresh_tokens) | set(stack.emulator._access_tokens)


@pytest.fixture
def refresher_env(stack, emulator_clock):
    """An empty due index (advertisers of earlier tests leave it), an empty queue, a fresh
    refresher, the app on the emulator's clock, and ``travel(seconds)`` moving both forward."""
    for shard in range(schema.EXPIRY_SHARDS):
        for entry in table().query(IndexName=schema.EXPIRY_INDEX,
                                   KeyConditionExpression="due_pk = :p", ExpressionAttributeValues={":p": f"DUE#{shard}"})["Items"]:
            table().update_item(Key=schema.advertiser_key(entry["advertiser_id"]), UpdateExpression="REMOVE due_pk, due_sk")
    stack.scheduler().clear()
    wiring.clock = emulator_clock
    wiring.refresher.cache_clear()  # a fresh worker: no LwA call proven yet (time travel confuses that)

    def travel(seconds: float) -> None:
        emulator_clock.offset += seconds

    yield travel
    wiring.clock = time.time
    table().delete_item(Key=PLATFORM_KEY)


@pytest.fixture
def scheduler(stack, refresher_env):
    return stack.scheduler()


@pytest.fixture
def per_advertiser(stack):
    """The stack in the per-advertiser layout for the test (each advertiser its own two secrets)."""
    with stack.environment(TOKEN_LAYOUT="per_advertiser"):
        yield


@pytest.fixture
def layout(stack, request):
    """The stack in the token layout the test is parametrized with (``indirect``)."""
    with stack.environment(TOKEN_LAYOUT=request.param):
        yield request.param


@pytest.fixture
def connected(flow):
    made: list[str] = []

    def connect(region: str = "NA") -> str:
        f = flow(region)
        f.consent("allow")
        assert f.callback().status_code == 303
        assert f.advertiser()["status"] == "connected"
        made.append(f.advertiser_id)
        return f.advertiser_id

    yield connect
    # Time travel left these advertisers' profiles "seen" in the future, which would make them win
    # every later advertiser-by-profile lookup (all test advertisers share the emulator's user).
    for advertiser_id in made:
        for profile in wiring.store().list_profiles(advertiser_id):
            table().delete_item(Key=schema.profile_key(advertiser_id, profile.region.value, profile.profile_id))


@pytest.fixture
def alerts(stack):
    """An SQS queue subscribed to the alert topic: ``read()`` returns the alerts published so far."""
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    url = sqs.create_queue(QueueName=f"alerts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(TopicArn=stack.topic_arn, Protocol="sqs", Endpoint=arn,
                                 Attributes={"RawMessageDelivery": "false"})["SubscriptionArn"]

    def read() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    yield read
    sns.unsubscribe(SubscriptionArn=subscription)
    sqs.delete_queue(QueueUrl=url)


# --- the happy path ---------------------------------------------------------------------------------
def test_a_refresh_cycle_moves_expiry_forward_and_replaces_the_access_token(stack, scheduler, refresher_env, connected):
    advertiser_id = connected("EU")
    before = tokens(advertiser_id)
    assert before["where"] == "own"  # a new grant lands in its own secrets, in either layout
    assert scheduler.tick()[0] == 0  # fresh: nothing to do
    refresher_env(3600 - 600)  # 10 minutes left: inside the 12-minute lead window
    dispatched, report = scheduler.tick()
    assert (dispatched, report.processed, report.failed) == (1, 1, 0)
    after = tokens(advertiser_id)  # in its own secrets or, having joined one, a pack's
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] == before["refresh_token"] and accepted(stack, after["refresh_token"])
    assert after["expires_at"] == pytest.approx(wiring.now() + 3600, abs=5)
    assert stack.emulator.access_token_info(after["access_token"])["expires_at"] >= after["expires_at"]
    assert refresh_calls(stack) == refresh_calls(stack, "EU") == 1  # the token host paired with EU
    adv = item(advertiser_id)
    assert adv.get("pack", "") == after["pack"]  # its pointer names where its tokens are
    assert float(adv["token_expires_at"]) == pytest.approx(after["expires_at"], abs=1)
    assert adv["due_sk"] > before_iso(wiring.now() + 3000) and "last_refresh_error" not in adv
    events = [e.event for e in wiring.store().list_events(advertiser_id)]
    assert events == ["refreshed", "connected"]
    dispatched, report = scheduler.tick()
    assert dispatched == 0 and report.batches == 0  # nothing due any more
    assert refresh_calls(stack) == 1


def before_iso(epoch: float) -> str:
    from adsauth.adapters.table import iso

    return iso(epoch)


def test_a_rotated_refresh_token_is_stored_first_and_never_replaced_by_an_older_one(
    stack, per_advertiser, scheduler, refresher_env, connected, monkeypatch
):
    """The advertiser's own refresh secret: each version the successor of the one it replaced."""
    advertiser_id = connected()
    old = secret("refresh", advertiser_id)
    stack.emulator.rotate_refresh_tokens = True
    vault, order = wiring.vault(), []
    for name in ("replace_refresh_token", "put_access_token"):
        real = getattr(vault, name)
        monkeypatch.setattr(vault, name, lambda *a, _real=real, _name=name, **k: (order.append(_name), _real(*a, **k))[1])
    refresher_env(3000)
    assert scheduler.tick()[1].processed == 1
    assert order == ["replace_refresh_token", "put_access_token"]
    new = secret("refresh", advertiser_id)
    assert new["refresh_token"] != old["refresh_token"] and new["version"] == successor_version(old["version"])
    assert [e.event for e in wiring.store().list_events(advertiser_id, 2)] == ["refreshed", "rotated"]
    # a stale writer that refreshed from the old version cannot replace the newer token
    with pytest.raises(RefreshTokenSuperseded):
        vault.replace_refresh_token(advertiser_id, "Atzr|stale-" + "x" * 40, wiring.now(), replaces=old["version"], fence=1)
    assert secret("refresh", advertiser_id)["refresh_token"] == new["refresh_token"]


def test_in_a_pack_a_rotated_refresh_token_replaces_the_entry_and_no_stale_writer_takes_it_back(
    stack, scheduler, refresher_env, connected
):
    advertiser_id = connected()
    pack = into_a_new_pack(advertiser_id)
    stack.emulator.rotate_refresh_tokens = True  # from now on every refresh retires the old token
    old, stale_base = tokens(advertiser_id), wiring.vault().read_pack("refresh", pack)
    refresher_env(3000)
    assert scheduler.tick()[1].processed == 1
    new = tokens(advertiser_id)
    assert (new["where"], new["pack"]) == ("pack", pack)
    assert new["refresh_token"] != old["refresh_token"] and accepted(stack, new["refresh_token"])
    assert not accepted(stack, old["refresh_token"])  # only the stored token is left: it must be there
    assert [e.event for e in wiring.store().list_events(advertiser_id, 2)] == ["refreshed", "rotated"]
    # a stale writer that read the pack before the refresh: its change to the entry is dropped
    stale = packs.refresh_entry("Atzr|stale-" + "x" * 40, wiring.now(), 1)
    _written, dropped = wiring.vault().write_pack("refresh", pack, stale_base, {advertiser_id: stale})
    assert dropped == {advertiser_id}
    assert tokens(advertiser_id)["refresh_token"] == new["refresh_token"]


# --- transient failures -----------------------------------------------------------------------------
def test_lwa_5xx_is_retried_then_the_job_fails_and_is_delivered_again(stack, scheduler, refresher_env, connected):
    advertiser_id = connected()
    refresher_env(3000)
    stack.emulator.fault("token", "5xx", times=3)  # every attempt of the first delivery
    dispatched, report = scheduler.tick()
    assert (dispatched, report.processed, report.failed) == (1, 0, 1)
    assert refresh_calls(stack) == 3  # the HTTP client's capped, jittered retries
    assert item(advertiser_id)["last_refresh_error"] == "lwa_unavailable"  # the status says why
    assert scheduler.depth() == 1 and scheduler.drain().batches == 0  # invisible until its visibility timeout
    assert scheduler.redeliver() == 1
    report = scheduler.drain()
    assert (report.processed, report.failed) == (1, 0)
    assert "last_refresh_error" not in item(advertiser_id) and refresh_calls(stack) == 4


def test_a_job_that_keeps_failing_ends_in_the_dlq_with_the_reason_recorded(stack, scheduler, refresher_env, connected):
    advertiser_id = connected()
    refresher_env(3000)
    stack.emulator.fault("token", "5xx")
    assert scheduler.dispatch() == 1
    report = scheduler.drain(redeliver_failed=True)
    assert report.failed == 5 and report.processed == 0  # maxReceiveCount
    assert scheduler.depth() == 0 and scheduler.depth(stack.dlq_url) == 1
    assert item(advertiser_id)["last_refresh_error"] == "lwa_unavailable"
    assert scheduler.clear(stack.dlq_url) == 1


def test_429_retry_after_is_honoured(stack, scheduler, refresher_env, connected):
    connected()
    refresher_env(3000)
    stack.emulator.fault("token", "429", times=1, retry_after=2)
    assert scheduler.tick()[1].processed == 1
    first, second = [c["time"] for c in stack.emulator.calls if c["endpoint"] == "token" and c["grant_type"] == "refresh_token"]
    # jitter alone waits at most 0.2 s before the 2nd attempt; Retry-After (capped at 0.5 s here) more
    assert second - first >= 0.45


def test_a_timeout_is_retried(stack, scheduler, refresher_env, connected):
    advertiser_id = connected()
    refresher_env(3000)
    stack.emulator.timeout_sleep_s = 3  # longer than the client's 2 s read timeout
    stack.emulator.fault("token", "timeout", times=1)
    assert scheduler.tick()[1].processed == 1
    assert float(item(advertiser_id)["token_expires_at"]) > wiring.now() + 3000
    deadline = time.monotonic() + 2  # the emulator logs the timed-out call when it finally answers
    while refresh_calls(stack) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refresh_calls(stack) == 2


# --- final failures ---------------------------------------------------------------------------------
def test_a_revoked_grant_needs_reauth_alerts_and_is_never_tried_again(
    stack, scheduler, refresher_env, connected, alerts, capsys
):
    advertiser_id = connected()
    stack.emulator.revoke_grant(DEFAULT_USER, CLIENT_ID)
    refresher_env(3000)
    assert scheduler.tick()[1].processed == 1  # acknowledged: final, not retried
    adv = item(advertiser_id)
    assert adv["status"] == "needs_reauth" and adv["status_reason"] == "invalid_grant"
    assert "due_pk" not in adv and "due_sk" not in adv  # out of the refresher's index
    assert "NeedsReauth" in capsys.readouterr().out  # the metric (EMF)
    [alert] = alerts()
    assert advertiser_id in alert["Message"] and "Acme Outdoor" in alert["Message"]
    assert f"    adsauth reinvite {advertiser_id}\n" in alert["Message"]
    assert not any(token in alert["Message"] + alert["Subject"] for token in emulator_tokens(stack))
    assert wiring.store().list_events(advertiser_id, 1)[0].event == "needs_reauth"
    refresher_env(3600)
    assert scheduler.tick()[0] == 0 and refresh_calls(stack) == 1


def test_invalid_client_pauses_the_run_and_the_rest_of_the_batch_makes_no_lwa_call(
    stack, scheduler, refresher_env, connected, alerts, capsys
):
    advertisers = [connected() for _ in range(3)]
    stack.emulator.register_client(CLIENT_ID, "a-rotated-secret-" + uuid.uuid4().hex, [stack.callback_url])
    try:
        refresher_env(3000)
        dispatched, report = scheduler.tick()
        assert (dispatched, report.batches, report.processed, report.failed) == (3, 1, 3, 0)  # acknowledged
        assert refresh_calls(stack) == 1
        flag = table().get_item(Key=PLATFORM_KEY)["Item"]
        assert flag["reason"] == "invalid_client" and float(flag["paused_until"]) > wiring.now() + 800
        assert "LwaInvalidClient" in capsys.readouterr().out
        [alert] = alerts()
        assert "invalid_client" in alert["Message"] and stack.client_secret not in alert["Message"]
        assert all(item(a)["status"] == "connected" for a in advertisers)  # nothing lost
        refresher_env(60)
        assert scheduler.tick()[0] == 0 and refresh_calls(stack) == 1  # the dispatcher stops too
    finally:
        stack.emulator.register_client(CLIENT_ID, stack.client_secret, [stack.callback_url])
    refresher_env(900)  # the pause ends: the advertisers are found again
    assert scheduler.tick()[1].processed == 3 and refresh_calls(stack) == 4


# --- profiles ---------------------------------------------------------------------------------------
def test_a_region_down_is_pending_then_cleared_when_it_recovers(stack, scheduler, refresher_env, connected):
    stack.emulator.fault("profiles", "5xx", region="FE")
    advertiser_id = connected()
    assert item(advertiser_id)["pending_regions"] == ["FE"]
    stack.emulator.clear_faults()
    refresher_env(600)
    assert scheduler.tick()[0] == 0  # the retry is not due yet (and neither is the token)
    refresher_env(301)
    dispatched, report = scheduler.tick()
    assert (dispatched, report.processed) == (1, 1)
    adv = item(advertiser_id)
    assert adv["pending_regions"] == [] and stack.emulator.count("profiles", "FE") >= 2
    assert adv["due_sk"] == before_iso(float(adv["token_expires_at"]))  # back on the token's deadline


def test_a_vanished_profile_is_marked_removed_and_kept(stack, scheduler, refresher_env, connected):
    advertiser_id = connected()
    fewer = {**DEFAULT_PROFILES, "NA": DEFAULT_PROFILES["NA"][1:]}
    gone = DEFAULT_PROFILES["NA"][0]["profileId"]
    stack.emulator.set_user(DEFAULT_USER, fewer)
    try:
        refresher_env(86400 - 1200)  # the daily listing rides along with the token refresh before it
        assert scheduler.tick()[1].processed == 1
    finally:
        stack.emulator.set_user(DEFAULT_USER, DEFAULT_PROFILES)
    profiles = {p.profile_id: p for p in wiring.store().list_profiles(advertiser_id)}
    assert profiles[gone].status == "removed" and profiles[gone].removed_at == pytest.approx(wiring.now(), abs=5)
    assert all(p.status == "active" for pid, p in profiles.items() if pid != gone)


# --- concurrency and duplicates ---------------------------------------------------------------------
def test_two_workers_on_one_advertiser_make_exactly_one_lwa_call(stack, scheduler, refresher_env, connected):
    advertiser_id = connected()
    refresher_env(3000)
    sqs = boto3.client("sqs")
    for _ in range(2):  # two jobs for one advertiser (e.g. two dispatcher runs)
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps({"advertiser_id": advertiser_id}))
    batches = [scheduler.receive(), scheduler.receive()]
    if len(batches[0]) == 2:
        batches = [batches[0][:1], batches[0][1:]]
    assert [len(b) for b in batches] == [1, 1]
    stack.emulator.fault("token", "latency", latency_ms=300)  # the first holds the lease meanwhile
    reports, barrier = [], threading.Barrier(2)

    def worker(messages):
        barrier.wait()
        reports.append(scheduler.drain_messages(messages))

    threads = [threading.Thread(target=worker, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refresh_calls(stack) == 1
    assert sum(r.processed for r in reports) == 2 and scheduler.depth() == 0


def test_the_same_message_delivered_twice_makes_one_lwa_call(stack, scheduler, refresher_env, connected):
    connected()
    refresher_env(3000)
    assert scheduler.dispatch() == 1
    [message] = scheduler.receive()
    first = scheduler.drain_messages([message], delete=False)  # processed, but the delete was lost
    second = scheduler.drain_messages([message])  # SQS delivers it again
    assert first.processed == second.processed == 1
    assert refresh_calls(stack) == 1


@pytest.mark.parametrize("layout", ["per_advertiser", "packed"], indirect=True)
def test_the_dispatcher_queries_the_index_and_queues_only_due_advertisers(
    stack, layout, scheduler, refresher_env, connected, monkeypatch
):
    due = connected()
    refresher_env(1800)
    fresh = connected()
    refresher_env(1200)  # `due` has 10 minutes left, `fresh` 40
    store = wiring.store()
    queries = []
    real_query = store.table.query
    monkeypatch.setattr(store.table, "scan", lambda **_: pytest.fail("the dispatcher scanned the table"))
    monkeypatch.setattr(store.table, "query", lambda **k: (queries.append(k.get("IndexName")), real_query(**k))[1])
    assert scheduler.dispatch() == 1
    # one query per shard of the due index, (packed: one of the packs, byKind, kind_pk=PACK, for
    # an advertiser of its own secrets to join) and one of the events outbox (byKind, kind_pk=OUTBOX)
    packs_query = [schema.KIND_INDEX] if layout == "packed" else []
    assert queries == [schema.EXPIRY_INDEX] * schema.EXPIRY_SHARDS + packs_query + [schema.KIND_INDEX]
    [message] = scheduler.receive()
    body = json.loads(message["Body"])  # ids, nothing else
    if layout == "per_advertiser" or "advertiser_id" in body:  # packed: alone while a pack with room exists
        assert body == {"advertiser_id": due}
    else:  # packed, no pack with room: it founds one
        assert body == {"pack": body["pack"], "members": [], "joiners": [due]} and packs.PACK_ID.match(body["pack"])
    assert scheduler.drain_messages([message]).processed == 1
    assert float(item(fresh)["token_expires_at"]) < float(item(due)["token_expires_at"])
    assert refresh_calls(stack) == 1


# --- ops: revoke, listing ---------------------------------------------------------------------------
def test_revoke_deletes_the_tokens_keeps_the_records_and_a_new_consent_works(stack, refresher_env, connected, browser):
    advertiser_id = connected()
    wiring.refresher().revoke(advertiser_id)
    names = {f"{SECRET_PREFIX}{kind}/{advertiser_id}" for kind in ("refresh", "access")}
    assert not names & secret_names()
    adv = item(advertiser_id)
    assert adv["status"] == "revoked" and "due_pk" not in adv
    assert [e.event for e in wiring.store().list_events(advertiser_id)] == ["revoked", "connected"]
    assert advertiser_id in {a.advertiser_id for a in wiring.store().list_advertisers()}
    # a re-authorization (reinvite) stores a new grant under the same names
    reauthorize(stack, browser, advertiser_id)
    assert names <= secret_names() and item(advertiser_id)["status"] == "connected"
    assert tokens(advertiser_id)["where"] == "own"  # a new grant: its own secrets, in either layout


def test_revoke_of_a_pack_member_removes_its_entries_and_a_new_consent_lands_in_its_own_secrets(
    stack, refresher_env, connected, browser
):
    advertiser_id, neighbour = connected(), connected()
    pack = into_a_new_pack(advertiser_id)
    joined = wiring.refresher().refresh_pack(packs.PackJob(pack, (), (neighbour,)))  # a second member
    assert [r.outcome for r in joined] == ["refreshed"]
    assert tokens(neighbour)["pack"] == pack and tokens(advertiser_id)["members"] == 2
    wiring.refresher().revoke(advertiser_id)
    assert item(advertiser_id)["status"] == "revoked"
    assert tokens(advertiser_id) is None and tokens(advertiser_id, pack=pack) is None  # no entry, no own secret
    assert not {f"{SECRET_PREFIX}{kind}/{advertiser_id}" for kind in ("refresh", "access")} & secret_names()
    left = tokens(neighbour)  # the other member keeps serving from the pack
    assert (left["pack"], left["members"]) == (pack, 1) and accepted(stack, left["refresh_token"])
    reauthorize(stack, browser, advertiser_id)
    again = tokens(advertiser_id)
    assert again["where"] == "own" and accepted(stack, again["refresh_token"])
    assert item(advertiser_id)["status"] == "connected" and "pack" not in item(advertiser_id)
