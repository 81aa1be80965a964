"""``python -m adsauth migrate-layout`` on the local stack (``adsauth.migrate``): advertisers
connected through the gateway and the emulator move from their own secrets into packs and back
again, while a downstream reader (``adsauth.client``, its cache cleared every round so each read
reaches Secrets Manager) never misses a token; the other layout than the deployed one is refused
and changes nothing; a second run moves nothing. Token values are compared, never printed."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from adsauth import client, cli, schema, wiring
from adsauth.migrate import LayoutMismatch
from adsauth.models import AdvertiserStatus
from local.stack import SECRET_PREFIX, TABLE_NAME, stored_tokens
from tests.conftest import remember
from tests.stack_fixtures import secret_names

ADVERTISERS = 5
PACK_SIZE = 2  # so the five fill three packs: the way back empties several
MIN_REMAINING = 600.0  # what downstream is promised: ten minutes left


def item(advertiser_id: str) -> dict:
    return boto3.resource("dynamodb").Table(TABLE_NAME).get_item(
        Key=schema.advertiser_key(advertiser_id), ConsistentRead=True)["Item"]


def tokens(advertiser_id: str) -> dict | None:
    found = stored_tokens(advertiser_id)
    if found:
        remember(found["refresh_token"], found["access_token"])
    return found


def own_secrets(advertiser_id: str) -> set[str]:
    return {f"{SECRET_PREFIX}{kind}/{advertiser_id}" for kind in ("refresh", "access")}


def pack_secrets(pack_id: str) -> set[str]:
    return {f"{SECRET_PREFIX}{kind}/packs/{pack_id}" for kind in ("refresh", "access")}


def accepted(stack, refresh_token: str | None) -> bool:
    """Whether LwA (the emulator) would still refresh with this token."""
    em = stack.emulator
    with em._lock:
        grant = em._grants.get(em._refresh_tokens.get(refresh_token or "", ""))
        return grant is not None and not grant.revoked


def refreshes(stack) -> int:
    return stack.emulator.count("token", grant_type="refresh_token")


def migrate(capsys, to: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what came before is not the command's
    code = cli.main(["migrate-layout", "--to", to, "--pack-size", str(PACK_SIZE), "--yes"])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(advertiser_ids: list[str]) -> tuple[dict, set[str], dict]:
    """Where everything is: pointers, every advertiser secret's name, what each advertiser holds."""
    stored = {a: tokens(a) for a in advertiser_ids}
    return {a: item(a).get("pack", "") for a in advertiser_ids}, secret_names(), stored


class Reader:
    """A downstream Lambda reading every advertiser's token in a loop, never from its cache."""

    def __init__(self, advertiser_ids: list[str]) -> None:
        self.advertiser_ids = advertiser_ids
        self.rounds = self.reads = 0
        self.failures: list[tuple[str, str]] = []  # (advertiser, what went wrong): no values
        self.least = float("inf")  # the least time left of any token read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="downstream")

    def _run(self) -> None:
        while not self._stop.is_set():
            for advertiser_id in self.advertiser_ids:
                client.clear_cache()
                self.reads += 1
                try:
                    token = client.get_token_info(advertiser_id=advertiser_id)
                except Exception as exc:  # noqa: BLE001 - the test counts them
                    self.failures.append((advertiser_id, type(exc).__name__))
                    continue
                remember(token.value)
                self.least = min(self.least, token.remaining_seconds())
            self.rounds += 1

    def wait_rounds(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        target = self.rounds + count
        while self.rounds < target and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        assert self.rounds >= target, "the downstream reader stalled"

    def __enter__(self) -> "Reader":
        self._thread.start()
        self.wait_rounds(1)  # reading before the migration starts ...
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            if exc_type is None:
                self.wait_rounds(1)  # ... and after it ended
        finally:
            self._stop.set()
            self._thread.join(30)


def retire_leftovers(mine: set[str]) -> None:
    """Connected advertisers that earlier tests left hold grants the emulator has forgotten (it
    resets after each test): a migration would refresh them in vain (LwA: invalid_grant) and
    report them not moved. They are revoked first, as ops revoke dead grants."""
    store, refresher = wiring.store(), wiring.refresher()
    left = [a.advertiser_id for a in store.list_advertisers()
            if a.status is AdvertiserStatus.CONNECTED and a.advertiser_id not in mine]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(refresher.revoke, left))


@pytest.fixture
def fleet(stack, flow) -> list[str]:
    """``ADVERTISERS`` advertisers connected through the gateway and the emulator (each in its own
    secrets, as every new grant), and no other connected advertiser on the stack."""
    made = []
    for _ in range(ADVERTISERS):
        f = flow()
        f.consent()
        assert f.callback().status_code == 303 and f.advertiser()["status"] == "connected"
        made.append(f.advertiser_id)
    retire_leftovers(set(made))
    for advertiser_id in made:
        assert tokens(advertiser_id)["where"] == "own" and "pack" not in item(advertiser_id)
    yield made
    client.clear_cache()


def migrate_while_reading(capsys, fleet, to: str) -> None:
    """``migrate-layout --to <to>`` while every advertiser's token is read in a loop: it moves
    them all, and every read before, during and after finds a token with the promised time."""
    with Reader(fleet) as reader:
        started = reader.reads
        code, out, err = migrate(capsys, to)
        during = reader.reads - started
    assert (code, err) == (0, ""), err
    assert f"moved {ADVERTISERS} advertiser(s) to the {to} layout" in out
    assert reader.failures == [] and reader.rounds >= 2 and during >= 1  # reads before, during, after
    assert reader.least >= MIN_REMAINING


def test_migrating_to_packed_and_back_keeps_every_downstream_read_served(stack, capsys, fleet):
    stack.emulator.fault("token", "latency", latency_ms=200)  # each move takes a while: reads land inside
    before = {a: tokens(a) for a in fleet}
    calls = refreshes(stack)

    # --- to packed: the stack's layout ------------------------------------------------------------
    migrate_while_reading(capsys, fleet, "packed")
    assert refreshes(stack) == calls + ADVERTISERS  # each moved with one refresh
    packed, names = {a: tokens(a) for a in fleet}, secret_names()
    for advertiser_id, found in packed.items():
        assert found["where"] == "pack" and item(advertiser_id)["pack"] == found["pack"]
        assert not own_secrets(advertiser_id) & names, "an own secret was left behind"
        assert found["access_token"] != before[advertiser_id]["access_token"]  # renewed on the way
        assert accepted(stack, found["refresh_token"])
    sizes = Counter(found["pack"] for found in packed.values())
    assert sorted(sizes.values()) == [1, 2, 2]  # --pack-size 2
    assert all(packed[a]["members"] == sizes[packed[a]["pack"]] for a in fleet)
    assert all(pack_secrets(p) <= names for p in sizes)

    # --- and back, once the stack is deployed per advertiser ------------------------------------------
    calls = refreshes(stack)
    with stack.environment(TOKEN_LAYOUT="per_advertiser"):
        migrate_while_reading(capsys, fleet, "per_advertiser")
    assert refreshes(stack) == calls + ADVERTISERS
    names = secret_names()
    for advertiser_id in fleet:
        found = tokens(advertiser_id)
        assert found["where"] == "own" and "pack" not in item(advertiser_id)
        assert own_secrets(advertiser_id) <= names
        assert found["access_token"] != packed[advertiser_id]["access_token"]  # renewed on the way
        assert accepted(stack, found["refresh_token"])
        assert stored_tokens(advertiser_id, pack=packed[advertiser_id]["pack"])["where"] == "own"  # no entry left
    assert not any(pack_secrets(p) & names for p in sizes), "a pack's secrets were left behind"


def test_the_layout_the_stack_does_not_run_is_refused_and_changes_nothing(stack, capsys, fleet):
    calls, where = refreshes(stack), snapshot(fleet)
    code, out, err = migrate(capsys, "per_advertiser")  # the stack runs the packed layout
    assert (code, out, err) == (1, "", f"error: {LayoutMismatch.message}\n")
    assert snapshot(fleet) == where and refreshes(stack) == calls
    with stack.environment(TOKEN_LAYOUT="per_advertiser"):
        code, out, err = migrate(capsys, "packed")
    assert (code, out, err) == (1, "", f"error: {LayoutMismatch.message}\n")
    assert snapshot(fleet) == where and refreshes(stack) == calls


def test_a_second_run_moves_nothing(stack, capsys, fleet):
    code, out, err = migrate(capsys, "packed")
    assert code == 0 and f"moved {ADVERTISERS} advertiser(s)" in out, err
    calls, where = refreshes(stack), snapshot(fleet)
    assert all(where[2][a]["where"] == "pack" for a in fleet)
    code, out, err = migrate(capsys, "packed")
    assert (code, err) == (0, "") and "moved 0 advertiser(s) to the packed layout" in out
    assert snapshot(fleet) == where and refreshes(stack) == calls
