"""The pack methods of the real adapters (``DynamoStore``, ``SecretsManagerVault``) on moto,
in-process: each transition one conditional write whose failure changes nothing; every pair of
pack writers in both orders (two from one base, a removal against a stale writer, two creating
the pack); and one scenario run on the in-memory stand-ins as well, whose results must match the
adapters' (``local.memory`` is what the unit tests and simulations trust)."""

from __future__ import annotations

import threading
import uuid
from types import SimpleNamespace

import boto3
import pytest

from adsauth import packs, schema
from adsauth.adapters import refresh_items
from adsauth.adapters.dynamo import advertiser_item, iso
from adsauth.adapters.table import DynamoStore
from adsauth.adapters.vault import SecretsManagerVault, successor_version
from adsauth.errors import PackTooLarge, TokensDeleted
from adsauth.models import Advertiser, AdvertiserStatus, Grant, Lease, TokenSet
from adsauth.packs import PackInfo, PackValue
from adsauth.regions import Region
from local import moto_patches
from local.memory import MemoryStore, MemoryVault
from tests.conftest import remember
from tests.moto_region import in_process_aws, own_region

REGION = "ca-central-1"  # not the session stack's region: moto's backends are shared in-process
TABLE = "adsauth-pack-test"
PREFIX = "packtest/advertisers/"
READERS = ("arn:aws:iam::123456789012:role/adsauth/*",)
T0 = 1_700_000_000.0
CONNECTED = AdvertiserStatus.CONNECTED


@pytest.fixture
def aws(monkeypatch):
    in_process_aws(monkeypatch, REGION)
    moto_patches.apply()  # moto's conditional writes as atomic as DynamoDB's (the lease race below)
    with own_region(TABLE):  # a reset would wipe the session stack's moto server too
        yield


@pytest.fixture
def store(aws) -> DynamoStore:
    return DynamoStore(table=table())


@pytest.fixture
def vault(aws) -> SecretsManagerVault:
    return SecretsManagerVault(client=boto3.client("secretsmanager"), prefix=PREFIX, refresh_readers=READERS)


def table():
    return boto3.resource("dynamodb").Table(TABLE)


def item(key: dict) -> dict | None:
    return table().get_item(Key=key, ConsistentRead=True).get("Item")


def advertiser(advertiser_id: str) -> Advertiser:
    return Advertiser(advertiser_id, "Pack Test", "ops@example.com", Region.NA, CONNECTED, T0, T0,
                      token_expires_at=T0 + 3600, connected_at=T0, profiles_at=T0, grant_expiry_basis="none")


def connect(store, *advertiser_ids: str) -> None:
    """Connected advertisers as the import makes them (``create_advertiser``)."""
    for advertiser_id in advertiser_ids:
        store.create_advertiser(advertiser(advertiser_id), None, [])


def lease_on(store, advertiser_id: str, owner: str = "worker-1") -> Lease:
    lease, _ = store.acquire_lease(advertiser_id, owner, T0, T0 + 300)
    return lease


def token(label: str) -> str:
    value = f"Atzr|packtest-{label}-{uuid.uuid4().hex}"
    remember(value)
    return value


def entry(kind: str, label: str) -> dict:
    if kind == "refresh":
        return packs.refresh_entry(token(label), T0, 1)
    return packs.access_entry(token(label), T0 + 3600)


def secret_name(kind: str, pack_id: str) -> str:
    return (packs.refresh_name if kind == "refresh" else packs.access_name)(PREFIX, pack_id)


def current_version(name: str) -> str:
    stages = boto3.client("secretsmanager").describe_secret(SecretId=name)["VersionIdsToStages"]
    return next(v for v, labels in stages.items() if "AWSCURRENT" in labels)


# --- DynamoDB: the pack item and its lease ---------------------------------------------------------
def test_the_first_pack_lease_creates_the_item_without_members(store):
    assert store.acquire_pack_lease("p1", "w1", T0, T0 + 300)
    assert item(schema.pack_key("p1")) == {
        "pk": "PACK#p1", "sk": "PACK", "type": "pack", "pack_id": "p1", "members": 0, "size": 0,
        "lease_owner": "w1", "lease_until": T0 + 300, "kind_pk": "PACK", "kind_sk": "p1",
    }
    assert store.list_packs() == []  # no members yet


def test_a_pack_lease_is_refused_while_held_retried_by_its_owner_and_taken_once_lapsed(store):
    assert store.acquire_pack_lease("p1", "w1", T0, T0 + 300)
    assert not store.acquire_pack_lease("p1", "w2", T0 + 10, T0 + 310)  # held
    assert item(schema.pack_key("p1"))["lease_owner"] == "w1"
    assert store.acquire_pack_lease("p1", "w1", T0 + 10, T0 + 400)  # its own retry extends it
    assert item(schema.pack_key("p1"))["lease_until"] == T0 + 400
    assert not store.acquire_pack_lease("p1", "w2", T0 + 399, T0 + 700)
    assert store.acquire_pack_lease("p1", "w2", T0 + 400, T0 + 700)  # lapsed
    assert not store.acquire_pack_lease("p1", "w1", T0 + 401, T0 + 701)
    assert item(schema.pack_key("p1"))["lease_owner"] == "w2"


def test_of_concurrent_pack_lease_takers_exactly_one_wins(store):
    takers, start, won = 8, threading.Barrier(8), []

    def take(owner: str) -> None:
        start.wait()
        if store.acquire_pack_lease("p1", owner, T0, T0 + 300):
            won.append(owner)

    threads = [threading.Thread(target=take, args=(f"w{i}",)) for i in range(takers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and item(schema.pack_key("p1"))["lease_owner"] == won[0]


def test_a_release_by_another_owner_changes_nothing_the_owners_keeps_the_members(store):
    store.acquire_pack_lease("p1", "w1", T0, T0 + 300)
    assert store.record_pack("p1", "w1", members=3, size=7000, now=T0 + 1)
    store.release_pack_lease("p1", "w2")
    assert item(schema.pack_key("p1"))["lease_owner"] == "w1"
    assert not store.acquire_pack_lease("p1", "w2", T0 + 2, T0 + 300)
    store.release_pack_lease("p1", "w1")
    released = item(schema.pack_key("p1"))
    assert "lease_owner" not in released and "lease_until" not in released
    assert (released["members"], released["size"], released["written_at"]) == (3, 7000, T0 + 1)
    assert store.acquire_pack_lease("p1", "w2", T0 + 3, T0 + 300)  # a released lease is free


@pytest.mark.parametrize("recorded", [False, True], ids=["never-written", "members-0"])
def test_a_pack_left_without_members_loses_its_item_when_its_owner_releases_it(store, recorded):
    store.acquire_pack_lease("p1", "w1", T0, T0 + 300)
    if recorded:
        store.record_pack("p1", "w1", members=2, size=3000, now=T0 + 1)
        store.record_pack("p1", "w1", members=0, size=0, now=T0 + 2)
    store.release_pack_lease("p1", "w2")  # not its owner: the item stays
    assert item(schema.pack_key("p1"))["lease_owner"] == "w1"
    store.release_pack_lease("p1", "w1")
    assert item(schema.pack_key("p1")) is None
    store.release_pack_lease("p1", "w1")  # again: nothing to release


def test_record_pack_only_while_the_lease_is_held(store):
    assert not store.record_pack("p1", "w1", members=1, size=10, now=T0)  # no item: none created
    assert item(schema.pack_key("p1")) is None
    store.acquire_pack_lease("p1", "w1", T0, T0 + 300)
    assert not store.record_pack("p1", "w2", members=5, size=9999, now=T0 + 1)
    assert item(schema.pack_key("p1"))["members"] == 0
    assert store.record_pack("p1", "w1", members=2, size=4321, now=T0 + 2)
    stored = item(schema.pack_key("p1"))
    assert (stored["members"], stored["size"], stored["written_at"]) == (2, 4321, T0 + 2)
    store.acquire_pack_lease("p1", "w2", T0 + 300, T0 + 600)  # w1's lapsed and was taken
    assert not store.record_pack("p1", "w1", members=9, size=1, now=T0 + 301)
    assert item(schema.pack_key("p1"))["members"] == 2


def test_list_packs_returns_the_packs_with_members_by_id_from_the_kind_index(store):
    connect(store, "adv-listed")
    for pack_id, members in (("pb", 4), ("pa", 1), ("pc", 0)):
        store.acquire_pack_lease(pack_id, "w1", T0, T0 + 300)
        store.record_pack(pack_id, "w1", members=members, size=100 * members, now=T0)
    assert store.list_packs() == [PackInfo("pa", 1, 100), PackInfo("pb", 4, 400)]
    assert [a.advertiser_id for a in store.list_advertisers()] == ["adv-listed"]  # packs are not advertisers


def test_pack_pointers_reads_status_and_pack_in_batches_of_100(store):
    ids = [f"adv-ptr{i:03d}" for i in range(230)]
    with table().batch_writer() as batch:
        for i, advertiser_id in enumerate(ids):
            written = advertiser_item(advertiser(advertiser_id))
            if i % 3 == 0:
                written["pack"] = f"pack{i % 2}"
            if i % 7 == 0:
                written["status"] = AdvertiserStatus.REVOKED.value
            batch.put_item(Item=written)
    calls = []
    real = store.client.batch_get_item
    store.client = Proxy(store.client, batch_get_item=lambda **kw: calls.append(kw) or real(**kw))
    pointers = store.pack_pointers([*ids, "adv-missing", ids[0], ids[5]])  # duplicates asked once
    assert len(calls) == 3 and all(len(c["RequestItems"][TABLE]["Keys"]) <= 100 for c in calls)
    assert set(pointers) == set(ids)
    for i, advertiser_id in enumerate(ids):
        status = AdvertiserStatus.REVOKED if i % 7 == 0 else CONNECTED
        assert pointers[advertiser_id] == (status, f"pack{i % 2}" if i % 3 == 0 else "")
    assert store.pack_pointers([]) == {}


class Proxy:
    """A client with some methods replaced."""

    def __init__(self, client, **methods):
        self._client, self._methods = client, methods

    def __getattr__(self, name):
        return self._methods.get(name) or getattr(self._client, name)


def unprocessing(client, times: int):
    """``batch_get_item`` that, ``times`` times, answers at most one key and leaves the others
    (at least one) unprocessed, as a throttled table does."""
    left = {"n": times}

    def batch_get_item(RequestItems):
        request = RequestItems[TABLE]
        if left["n"] <= 0:
            return client.batch_get_item(RequestItems=RequestItems)
        left["n"] -= 1
        keys = request["Keys"]
        served, unprocessed = (keys[:1], keys[1:]) if len(keys) > 1 else ([], keys)
        answered = client.batch_get_item(RequestItems={TABLE: {**request, "Keys": served}})["Responses"] if served else {}
        return {"Responses": answered, "UnprocessedKeys": {TABLE: {**request, "Keys": unprocessed}}}

    return Proxy(client, batch_get_item=batch_get_item)


def test_pack_pointers_asks_again_for_unprocessed_keys_and_fails_rather_than_omit_them(store, monkeypatch):
    connect(store, "adv-u1", "adv-u2", "adv-u3")
    sleeps: list[float] = []
    monkeypatch.setattr(refresh_items, "time", SimpleNamespace(sleep=sleeps.append))  # this module's sleeps only
    real = store.client
    store.client = unprocessing(real, times=2)
    assert store.pack_pointers(["adv-u1", "adv-u2", "adv-u3"]) == {a: (CONNECTED, "") for a in ("adv-u1", "adv-u2", "adv-u3")}
    assert len(sleeps) == 2 and sleeps[0] < sleeps[1] < 1
    store.client = unprocessing(real, times=refresh_items.BATCH_GET_ATTEMPTS)
    with pytest.raises(RuntimeError):  # never an advertiser reported missing that exists
        store.pack_pointers(["adv-u1", "adv-u2", "adv-u3"])


# --- DynamoDB: the advertiser's pack pointer -------------------------------------------------------
def test_set_pack_points_the_advertiser_while_its_lease_grant_and_connection_hold(store):
    connect(store, "adv-s1")
    lease = lease_on(store, "adv-s1")
    assert store.set_pack("adv-s1", "p1", lease)
    assert item(schema.advertiser_key("adv-s1"))["pack"] == "p1" and store.get_advertiser("adv-s1").pack == "p1"
    assert not store.set_pack("adv-s1", "p2", Lease("adv-s1", "worker-2", lease.fence, lease.until, T0))  # not its owner
    assert not store.set_pack("adv-s1", "p2", Lease("adv-s1", "worker-1", lease.fence - 1, lease.until, T0))  # old fence
    assert not store.set_pack("adv-s1", "p2", Lease("adv-s1", "worker-1", lease.fence, lease.until, T0 - 1))  # other grant
    assert store.get_advertiser("adv-s1").pack == "p1"
    assert store.set_pack("adv-s1", "", lease)
    assert "pack" not in item(schema.advertiser_key("adv-s1")) and store.get_advertiser("adv-s1").pack == ""
    assert not store.set_pack("missing", "p1", Lease("missing", "worker-1", 1, T0 + 300, T0))
    assert item(schema.advertiser_key("missing")) is None


def test_set_pack_is_refused_once_the_advertiser_is_revoked_or_reconnected(store):
    connect(store, "adv-r1", "adv-r2")
    revoked, reconnected = lease_on(store, "adv-r1"), lease_on(store, "adv-r2")
    assert store.revoke_advertiser(store.get_advertiser("adv-r1"), cause="operator", now=T0 + 1, events=[])
    assert not store.set_pack("adv-r1", "p1", revoked)
    assert store.complete_connection(advertiser_id="adv-r2", generation=1, invitation_hash=None, state_hash=None,
                                     grant=Grant(T0 + 5, None, "none"), token_expires_at=T0 + 3605, pending_regions=(),
                                     now=T0 + 5, events=[])
    assert not store.set_pack("adv-r2", "p1", reconnected)  # a new grant: the lease was on the old one
    assert "pack" not in item(schema.advertiser_key("adv-r1")) and "pack" not in item(schema.advertiser_key("adv-r2"))


def test_record_refresh_leaves_sets_or_removes_pack_in_the_same_conditional_write(store):
    connect(store, "adv-rr")
    lease = lease_on(store, "adv-rr")

    def refresh(pack, lease=lease):
        return store.record_refresh("adv-rr", lease=lease, token_expires_at=T0 + 3700, due_at=T0 + 3000, now=T0 + 10,
                                    pack=pack)

    assert refresh(None) and "pack" not in item(schema.advertiser_key("adv-rr"))
    assert refresh("p1") and item(schema.advertiser_key("adv-rr"))["pack"] == "p1"
    assert refresh(None) and item(schema.advertiser_key("adv-rr"))["pack"] == "p1"  # left as it is
    assert not refresh("p2", Lease("adv-rr", "worker-2", lease.fence, lease.until, T0))  # refused: nothing changes
    assert item(schema.advertiser_key("adv-rr"))["pack"] == "p1"
    assert refresh("") and "pack" not in item(schema.advertiser_key("adv-rr"))
    assert store.get_advertiser("adv-rr").pack == ""


def test_complete_connection_puts_a_new_grant_in_its_own_secrets(store):
    connect(store, "adv-cc")
    store.set_pack("adv-cc", "p1", lease_on(store, "adv-cc"))
    assert store.complete_connection(advertiser_id="adv-cc", generation=1, invitation_hash=None, state_hash=None,
                                     grant=Grant(T0 + 50, None, "none"), token_expires_at=T0 + 3650,
                                     pending_regions=(), now=T0 + 50, events=[])
    assert "pack" not in item(schema.advertiser_key("adv-cc")) and store.get_advertiser("adv-cc").pack == ""


def test_an_imported_advertiser_has_no_pack(store):
    connect(store, "adv-imp")
    assert "pack" not in item(schema.advertiser_key("adv-imp")) and store.get_advertiser("adv-imp").pack == ""


def test_due_advertisers_carry_their_pack_and_deadline(store):
    connect(store, "adv-d1", "adv-d2")
    lease = lease_on(store, "adv-d1")
    store.record_refresh("adv-d1", lease=lease, token_expires_at=T0 + 3700, due_at=T0 + 3000, now=T0 + 1, pack="p1")
    due = sorted(store.due_advertisers(T0 + 7200), key=lambda d: d.advertiser_id)
    assert [(d.advertiser_id, d.pack, d.due_at, d.due_sk) for d in due] == [
        ("adv-d1", "p1", T0 + 3000, iso(T0 + 3000)), ("adv-d2", "", T0 + 3600, iso(T0 + 3600))]
    assert store.snooze(due[0], T0 + 5000)  # due_sk is still the stored key


# --- Secrets Manager: pack secrets ------------------------------------------------------------------
def test_a_pack_never_written_reads_as_empty(vault):
    assert vault.read_pack("refresh", "nopack") == PackValue(None, {})
    assert vault.read_pack("access", "nopack") == PackValue(None, {})


def test_the_first_write_creates_the_secret_tagged_and_protects_a_refresh_pack(vault):
    sm = boto3.client("secretsmanager")
    for kind in ("refresh", "access"):
        changes = {"adv-1": entry(kind, "first")}
        written, dropped = vault.write_pack(kind, "p1", PackValue(None, {}), changes)
        assert dropped == set() and written.entries == changes
        name = secret_name(kind, "p1")
        assert written.version == current_version(name) and vault.read_pack(kind, "p1") == written
        described = sm.describe_secret(SecretId=name)
        assert described["Description"] == f"adsauth {kind} tokens of pack p1"
        assert {t["Key"]: t["Value"] for t in described["Tags"]} == {"adsauth:pack": "p1", "adsauth:kind": kind}
        policy = sm.get_resource_policy(SecretId=name).get("ResourcePolicy")
        if kind == "refresh":
            assert READERS[0] in policy and "GetSecretValue" in policy
        else:
            assert not policy  # downstream reads access tokens
    assert secret_name("refresh", "p1") == f"{PREFIX}refresh/packs/p1"


@pytest.mark.parametrize("kind", ["refresh", "access"])
def test_each_write_is_the_successor_of_the_version_it_read(vault, kind):
    first, _ = vault.write_pack(kind, "p1", PackValue(None, {}), {"adv-1": entry(kind, "a")})
    second, dropped = vault.write_pack(kind, "p1", first, {"adv-2": entry(kind, "b")})
    assert dropped == set() and second.version == successor_version(first.version)
    assert second.version == current_version(secret_name(kind, "p1"))
    assert set(vault.read_pack(kind, "p1").entries) == {"adv-1", "adv-2"}


def written_base(vault, kind: str) -> PackValue:
    base, _ = vault.write_pack(kind, "p1", PackValue(None, {}), {"x": entry(kind, "x0"), "y": entry(kind, "y0")})
    return base


@pytest.mark.parametrize("kind", ["refresh", "access"])
@pytest.mark.parametrize("order", ["AB", "BA"])
def test_of_two_writers_from_one_base_the_second_merges(vault, kind, order):
    """A changes x; B changes x and y. Whoever writes second loses x (changed meanwhile) and keeps y."""
    base = written_base(vault, kind)
    writers = {"A": {"x": entry(kind, "xa")}, "B": {"x": entry(kind, "xb"), "y": entry(kind, "yb")}}
    first, second = writers[order[0]], writers[order[1]]
    one, dropped_one = vault.write_pack(kind, "p1", base, first)
    two, dropped_two = vault.write_pack(kind, "p1", base, second)
    assert dropped_one == set() and dropped_two == {"x"}
    expected = {**base.entries, **first, **{k: v for k, v in second.items() if k != "x"}}
    assert two.entries == expected == vault.read_pack(kind, "p1").entries
    assert two.entries["x"] == first["x"]
    assert two.version == successor_version(one.version) == current_version(secret_name(kind, "p1"))


@pytest.mark.parametrize("order", ["removal-first", "stale-writer-first"])
def test_a_removal_is_never_undone_by_a_writer_that_read_the_pack_before_it(vault, order):
    base = written_base(vault, "refresh")
    removal, stale = {"x": None}, {"x": entry("refresh", "x1"), "y": entry("refresh", "y1")}
    if order == "removal-first":
        _, dropped = vault.write_pack("refresh", "p1", base, removal)
        assert dropped == set()
        after, dropped = vault.write_pack("refresh", "p1", base, stale)
        assert dropped == {"x"}  # the stale writer's token for x is dropped: the removal stays
    else:
        _, dropped = vault.write_pack("refresh", "p1", base, stale)
        assert dropped == set()
        current, dropped = vault.write_pack("refresh", "p1", base, removal)
        assert dropped == {"x"} and current.entries["x"] == stale["x"]  # told: x changed since it read
        after, dropped = vault.write_pack("refresh", "p1", current, removal)  # the revoke removes what is there
        assert dropped == set()
    assert "x" not in after.entries and after.entries["y"] == stale["y"]
    assert vault.read_pack("refresh", "p1").entries == after.entries


@pytest.mark.parametrize("order", ["AB", "BA"])
def test_of_two_writers_creating_a_pack_the_second_merges_into_the_first(vault, order):
    writers = {"A": {"x": entry("refresh", "xa")}, "B": {"x": entry("refresh", "xb"), "y": entry("refresh", "yb")}}
    first, second = writers[order[0]], writers[order[1]]
    one, dropped_one = vault.write_pack("refresh", "p1", PackValue(None, {}), first)
    two, dropped_two = vault.write_pack("refresh", "p1", PackValue(None, {}), second)
    assert dropped_one == set() and dropped_two == {"x"}
    assert two.entries == {**first, **{k: v for k, v in second.items() if k != "x"}}
    assert two.version == successor_version(one.version)
    sm = boto3.client("secretsmanager")
    names = [s["Name"] for s in sm.list_secrets()["SecretList"] if s["Name"].endswith("/packs/p1")]
    assert names == [secret_name("refresh", "p1")]
    assert READERS[0] in sm.get_resource_policy(SecretId=names[0])["ResourcePolicy"]


def test_a_change_dropped_once_stays_dropped_however_many_writers_come_between(vault, monkeypatch):
    """W changes x and y from base. Before each of its writes someone else writes: x first (so
    W's x is dropped), then z. Merged against the original base every time, x stays dropped."""
    base = written_base(vault, "refresh")
    other = SecretsManagerVault(client=boto3.client("secretsmanager"), prefix=PREFIX, refresh_readers=READERS)
    xa, za = entry("refresh", "xa"), entry("refresh", "za")
    meanwhile = [lambda: other.write_pack("refresh", "p1", base, {"x": xa}),
                 lambda: other.write_pack("refresh", "p1", other.read_pack("refresh", "p1"), {"z": za})]
    real = vault.client.put_secret_value

    def put_secret_value(**kwargs):
        if meanwhile:
            meanwhile.pop(0)()
        return real(**kwargs)

    monkeypatch.setattr(vault.client, "put_secret_value", put_secret_value)
    yw = entry("refresh", "yw")
    written, dropped = vault.write_pack("refresh", "p1", base, {"x": entry("refresh", "xw"), "y": yw})
    assert dropped == {"x"} and written.entries == {"x": xa, "y": yw, "z": za}
    assert vault.read_pack("refresh", "p1") == written


def test_a_value_that_would_not_fit_raises_pack_too_large_and_writes_nothing(vault):
    huge = packs.access_entry(token("huge") + "x" * packs.VALUE_LIMIT, T0 + 3600)
    remember(huge["a"])
    with pytest.raises(PackTooLarge) as raised:
        vault.write_pack("access", "p-new", PackValue(None, {}), {"adv-1": huge})
    assert huge["a"] not in str(raised.value) and raised.value.__cause__ is None
    with pytest.raises(boto3.client("secretsmanager").exceptions.ResourceNotFoundException):
        boto3.client("secretsmanager").describe_secret(SecretId=secret_name("access", "p-new"))
    base = written_base(vault, "access")
    with pytest.raises(PackTooLarge):
        vault.write_pack("access", "p1", base, {"x": None, "adv-1": huge})
    assert vault.read_pack("access", "p1") == base and current_version(secret_name("access", "p1")) == base.version


def test_delete_pack_deletes_both_secrets_and_ignores_absent_ones(vault):
    for kind in ("refresh", "access"):
        vault.write_pack(kind, "p1", PackValue(None, {}), {"adv-1": entry(kind, "d")})
    vault.delete_pack("p1")
    assert vault.read_pack("refresh", "p1") == PackValue(None, {}) == vault.read_pack("access", "p1")
    names = {s["Name"] for s in boto3.client("secretsmanager").list_secrets()["SecretList"]}
    assert not {secret_name("refresh", "p1"), secret_name("access", "p1")} & names
    vault.delete_pack("p1")
    vault.delete_pack("never-written")


def test_a_malformed_pack_value_reads_as_no_entries(vault):
    boto3.client("secretsmanager").create_secret(Name=secret_name("access", "bad"), SecretString="not json")
    read = vault.read_pack("access", "bad")
    assert read.version == current_version(secret_name("access", "bad")) and read.entries == {}


def test_get_access_token_reads_the_advertisers_own_secret(vault):
    access, refresh = token("own-access"), token("own-refresh")
    vault.put_grant("adv-own", TokenSet(access, refresh, T0 + 3600), T0)
    assert vault.get_access_token("adv-own") == (access, T0 + 3600)
    boto3.client("secretsmanager").put_secret_value(SecretId=vault.access_secret_name("adv-own"), SecretString="{}")
    with pytest.raises(TokensDeleted):  # malformed
        vault.get_access_token("adv-own")
    vault.delete_tokens("adv-own")
    with pytest.raises(TokensDeleted):
        vault.get_access_token("adv-own")
    with pytest.raises(TokensDeleted):
        vault.get_access_token("adv-never")


# --- the stand-ins mirror the adapters ----------------------------------------------------------------
def scenario(store, vault, order: str) -> list:
    """One short run of every pack method; what each call answered, with secret versions reduced
    to whether they are the current one (their ids differ by design)."""
    seen: list = []
    for advertiser_id in ("a1", "a2", "a3"):
        store.create_advertiser(advertiser(advertiser_id), None, [])
    seen.append(("leases", store.acquire_pack_lease("p1", "w1", T0, T0 + 300),
                 store.acquire_pack_lease("p1", "w2", T0 + 1, T0 + 301),
                 store.acquire_pack_lease("p1", "w1", T0 + 2, T0 + 302)))
    l1, _ = store.acquire_lease("a1", "w1", T0, T0 + 300)
    l2, _ = store.acquire_lease("a2", "w1", T0, T0 + 300)
    seen.append(("refresh", store.record_refresh("a1", lease=l1, token_expires_at=T0 + 3700, due_at=T0 + 3000,
                                                 now=T0 + 3, pack="p1")))
    seen.append(("set_pack", store.set_pack("a2", "p1", l2), store.set_pack("a3", "p1", Lease("a3", "w9", 7, T0 + 300, T0))))
    seen.append(("record_pack", store.record_pack("p1", "w2", members=9, size=9, now=T0 + 4),
                 store.record_pack("p1", "w1", members=2, size=1234, now=T0 + 4)))
    seen.append(("list", store.list_packs()))
    seen.append(("pointers", store.pack_pointers(["a1", "a2", "a3", "missing"])))
    seen.append(("due", sorted((d.advertiser_id, d.pack, d.due_at) for d in store.due_advertisers(T0 + 7200))))
    store.record_refresh("a1", lease=l1, token_expires_at=T0 + 3700, due_at=T0 + 3000, now=T0 + 5, pack="")
    store.record_refresh("a2", lease=l2, token_expires_at=T0 + 3700, due_at=T0 + 3000, now=T0 + 5)
    seen.append(("pointers", store.pack_pointers(["a1", "a2"])))
    store.release_pack_lease("p1", "w2")
    seen.append(("released by another", store.list_packs(), store.acquire_pack_lease("p1", "w2", T0 + 6, T0 + 306)))
    store.record_pack("p1", "w1", members=0, size=0, now=T0 + 7)
    store.release_pack_lease("p1", "w1")
    seen.append(("emptied", store.list_packs(), store.record_pack("p1", "w1", members=1, size=1, now=T0 + 8)))

    def wrote(result):
        value, dropped = result
        return sorted(value.entries), sorted(dropped), value.version == vault.read_pack("refresh", "p1").version

    e = {name: packs.refresh_entry(f"Atzr|mirror-{name}-{order}-token", T0, 1) for name in ("a1", "a1b", "a1c", "a2", "a3")}
    remember(*(v["r"] for v in e.values()))
    writers = {"A": {"a1": e["a1"]}, "B": {"a1": e["a1b"], "a2": e["a2"]}}
    empty = vault.read_pack("refresh", "p1")
    seen.append(("empty", empty.version, dict(empty.entries)))
    results = [vault.write_pack("refresh", "p1", empty, writers[w]) for w in order]
    seen.append(("creators", [wrote(r) for r in results]))
    first = results[0][0]
    seen.append(("revoke a1", wrote(vault.write_pack("refresh", "p1", vault.read_pack("refresh", "p1"), {"a1": None}))))
    seen.append(("stale writer", wrote(vault.write_pack("refresh", "p1", first, {"a1": e["a1c"]}))))
    big = packs.refresh_entry("Atzr|mirror-big-" + "x" * packs.VALUE_LIMIT, T0, 1)
    remember(big["r"])
    before = vault.read_pack("refresh", "p1")
    try:
        vault.write_pack("refresh", "p1", before, {"a3": big})
        seen.append("written")
    except PackTooLarge:
        seen.append(("too large", vault.read_pack("refresh", "p1") == before))
    vault.put_grant("a3", TokenSet("Atzr|mirror-access-a3", "Atzr|mirror-refresh-a3", T0 + 3600), T0)
    remember("Atzr|mirror-access-a3", "Atzr|mirror-refresh-a3")
    seen.append(("own access", vault.get_access_token("a3")))
    vault.delete_tokens("a3")
    try:
        vault.get_access_token("a3")
    except TokensDeleted:
        seen.append("own access deleted")
    vault.delete_pack("p1")
    seen.append(("deleted", vault.read_pack("refresh", "p1").version, vault.read_pack("access", "p1").version))
    seen.append(("after delete", wrote(vault.write_pack("refresh", "p1", before, {"a3": e["a3"], "a2": None}))))
    return seen


@pytest.mark.parametrize("order", ["AB", "BA"])
def test_the_stand_ins_answer_as_the_adapters_do(store, vault, order):
    real = scenario(store, vault, order)
    assert real == scenario(MemoryStore(), MemoryVault(), order)
    assert ("leases", True, False, True) in real and ("emptied", [], False) in real  # the scenario did run
