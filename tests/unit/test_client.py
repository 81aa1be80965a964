"""The downstream client against moto in-process, with a clock the tests move."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal

import boto3
import pytest
import urllib3
from aws_lambda_powertools.utilities import parameters

from adsauth import client, packs, schema
from adsauth.adapters.http import HttpClient
from adsauth.client import (
    AccessToken,
    AdsApiRejected,
    AdsApiSession,
    AdsApiUnreachable,
    AdsAuthClientError,
    AdvertiserNotFound,
    ClientConfigurationError,
    NeedsReauthorization,
    TokenUnavailable,
    clear_cache,
    get_access_token,
    get_token_info,
)
from tests.conftest import remember
from tests.moto_region import in_process_aws, own_region

TABLE = "adsauth-client-test"  # tests/iam/simulate.py maps it (and PREFIX) to the deployed names
REGION = "eu-west-3"  # not the integration stack's region
PREFIX = "test/advertisers/"
CLIENT_ID = "amzn1.application-oa2-client.unittest"
HOSTS = {"NA": "https://ads-na.test", "EU": "https://ads-eu.test", "FE": "https://ads-fe.test"}
T0 = 1_700_000_000.0
FALLBACKS = ("TABLE_NAME", "SECRET_PREFIX", "LWA_CLIENT_ID", "MIN_REMAINING_MINUTES")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def aws(monkeypatch):
    in_process_aws(monkeypatch, REGION)
    for name in FALLBACKS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"ADSAUTH_{name}", raising=False)
    monkeypatch.setenv("ADSAUTH_TABLE_NAME", TABLE)
    monkeypatch.setenv("ADSAUTH_SECRET_PREFIX", PREFIX)
    monkeypatch.setenv("ADSAUTH_LWA_CLIENT_ID", CLIENT_ID)
    for region, host in HOSTS.items():
        monkeypatch.setenv(f"ADS_API_URL_{region}", host)
    clear_cache()
    parameters.clear_caches()
    try:
        with own_region(TABLE):  # (the session stack's moto server is left alone)
            yield
    finally:
        clear_cache()
        parameters.clear_caches()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(client, "_clock", c)
    return c


@pytest.fixture
def reads():
    """How many GetSecretValue calls the client made."""
    count = {"n": 0}

    def hook(**_):
        count["n"] += 1

    client._secrets().meta.events.register("before-call.secrets-manager.GetSecretValue", hook)
    return count


def put_token(advertiser_id: str, expires_at: float) -> str:
    """An access-token secret, and a connected advertiser unless the test made it already (a
    token is served only for a connected advertiser, or a needs_reauth one while it lasts)."""
    token = "Atza|" + secrets.token_urlsafe(48)
    remember(token)
    if "Item" not in boto3.resource("dynamodb").Table(TABLE).get_item(Key=schema.advertiser_key(advertiser_id)):
        put_advertiser(advertiser_id)
    sm = boto3.client("secretsmanager")
    value = json.dumps({"access_token": token, "expires_at": expires_at})
    name = f"{PREFIX}access/{advertiser_id}"
    try:
        sm.put_secret_value(SecretId=name, SecretString=value)
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=name, SecretString=value)
    return token


def put_advertiser(advertiser_id: str, status: str = "connected") -> None:
    boto3.resource("dynamodb").Table(TABLE).put_item(Item={
        **schema.advertiser_key(advertiser_id), "type": "advertiser", "advertiser_id": advertiser_id,
        "name": "Acme", "email": "ads@acme.example", "region": "NA", "status": status,
        "created_at": Decimal(1), "updated_at": Decimal(1),
    })


def put_profile(advertiser_id: str, profile_id: int, region: str = "NA", seen_at: float = T0) -> None:
    boto3.resource("dynamodb").Table(TABLE).put_item(Item={
        **schema.profile_key(advertiser_id, region, profile_id), "type": "profile",
        schema.PROFILE_INDEX_PK: f"PROFILE#{profile_id}", "advertiser_id": advertiser_id,
        "profile_id": profile_id, "region": region, "status": "active", "seen_at": Decimal(str(seen_at)),
    })


def new_token() -> str:
    token = "Atza|" + secrets.token_urlsafe(48)
    remember(token)
    return token


def write_pack(pack_id: str, change) -> None:
    """Pack ``pack_id``'s access secret (created when absent), its entries changed by ``change``."""
    sm, name = boto3.client("secretsmanager"), packs.access_name(PREFIX, pack_id)
    try:
        entries = packs.decode(sm.get_secret_value(SecretId=name)["SecretString"])
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=name, SecretString=packs.encode(change({})))
        return
    sm.put_secret_value(SecretId=name, SecretString=packs.encode(change(entries)))


def put_entry(pack_id: str, advertiser_id: str, expires_at: float) -> str:
    """The advertiser's entry in the pack, as the refresher writes it (the pointer is not touched)."""
    token = new_token()
    write_pack(pack_id, lambda entries: {**entries, advertiser_id: packs.access_entry(token, expires_at)})
    return token


def remove_entry(pack_id: str, advertiser_id: str) -> None:
    write_pack(pack_id, lambda entries: {k: v for k, v in entries.items() if k != advertiser_id})


def point(advertiser_id: str, pack_id: str | None) -> None:
    """Set the advertiser's ``pack`` (None: remove it, back to its own secrets)."""
    table, key = boto3.resource("dynamodb").Table(TABLE), schema.advertiser_key(advertiser_id)
    if pack_id is None:
        table.update_item(Key=key, UpdateExpression="REMOVE #p", ExpressionAttributeNames={"#p": "pack"})
    else:
        table.update_item(Key=key, UpdateExpression="SET #p = :p", ExpressionAttributeNames={"#p": "pack"},
                          ExpressionAttributeValues={":p": pack_id})


def delete_own(advertiser_id: str) -> None:
    boto3.client("secretsmanager").delete_secret(SecretId=f"{PREFIX}access/{advertiser_id}",
                                                 ForceDeleteWithoutRecovery=True)


def put_packed(advertiser_id: str, pack_id: str, expires_at: float, status: str = "connected") -> str:
    """A packed advertiser: its entry in the pack, then its pointer (the refresher's order)."""
    put_advertiser(advertiser_id, status)
    token = put_entry(pack_id, advertiser_id, expires_at)
    point(advertiser_id, pack_id)
    return token


def after_first_item_read(action) -> None:
    """Run ``action`` right after the client's first GetItem: a move that finishes between the
    client reading the item and reading the secret."""
    done = []

    def hook(**_):
        if not done:
            done.append(True)
            action()

    client._store().client.meta.events.register("after-call.dynamodb.GetItem", hook)


@pytest.fixture
def item_reads():
    """How many GetItem calls the client made."""
    count = {"n": 0}
    client._store().client.meta.events.register("before-call.dynamodb.GetItem",
                                                lambda **_: count.update(n=count["n"] + 1))
    return count


# --- caching -------------------------------------------------------------------------------------
def test_cache_hit_makes_no_secrets_manager_call(clock, reads):
    token = put_token("adv-1", T0 + 3600)
    assert get_access_token(advertiser_id="adv-1") == token
    clock.now += 299
    assert get_access_token(advertiser_id="adv-1") == token
    assert reads["n"] == 1


def test_cached_token_is_reread_after_five_minutes(clock, reads):
    put_token("adv-1", T0 + 3600)
    get_access_token(advertiser_id="adv-1")
    renewed = put_token("adv-1", T0 + 3900)
    clock.now += 301
    assert get_access_token(advertiser_id="adv-1") == renewed
    assert reads["n"] == 2


def test_cache_never_returns_a_token_under_the_minimum(clock, reads):
    token = put_token("adv-1", T0 + 12 * 60)  # 12 minutes left: cacheable for 2 minutes at most
    assert get_access_token(advertiser_id="adv-1") == token
    clock.now += 119  # 10 min 1 s left
    assert get_access_token(advertiser_id="adv-1") == token
    assert reads["n"] == 1
    put_advertiser("adv-1")
    clock.now += 2  # 9 min 59 s left: the cached token no longer qualifies and neither does the stored one
    with pytest.raises(TokenUnavailable):
        get_access_token(advertiser_id="adv-1")
    assert reads["n"] == 2


def test_forced_refetch_when_the_cached_token_is_too_old_for_the_caller(clock, reads):
    put_token("adv-1", T0 + 12 * 60)
    get_access_token(advertiser_id="adv-1", min_remaining_minutes=0)  # cached for the full 5 minutes
    clock.now += 180  # 9 minutes left: fine for a 0-minute caller, not for a 10-minute one
    renewed = put_token("adv-1", clock.now + 3600)
    info = get_token_info(advertiser_id="adv-1", min_remaining_minutes=10)
    assert info.value == renewed and info.expires_at == clock.now + 3600 and info.advertiser_id == "adv-1"
    assert reads["n"] == 2


def test_a_token_without_the_promised_time_is_never_cached(clock, reads):
    put_advertiser("adv-1")
    token = put_token("adv-1", T0 + 5 * 60)
    for expected_reads in (1, 2):
        with pytest.raises(TokenUnavailable):
            get_access_token(advertiser_id="adv-1")
        assert reads["n"] == expected_reads
    assert get_access_token(advertiser_id="adv-1", min_remaining_minutes=1) == token
    assert get_access_token(advertiser_id="adv-1", min_remaining_minutes=1) == token
    assert reads["n"] == 3


def test_clear_cache_forgets_tokens(clock, reads):
    put_token("adv-1", T0 + 3600)
    get_access_token(advertiser_id="adv-1")
    clear_cache()
    assert not client._tokens
    again = {"n": 0}
    client._secrets().meta.events.register(
        "before-call.secrets-manager.GetSecretValue", lambda **_: again.update(n=again["n"] + 1)
    )
    get_access_token(advertiser_id="adv-1")
    assert reads["n"] == 1 and again["n"] == 1


# --- diagnosis -----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", ["needs_reauth", "revoked"])
def test_stale_token_of_an_advertiser_who_must_reauthorize(clock, status):
    put_advertiser("adv-1", status)
    token = put_token("adv-1", T0 - 60)
    with pytest.raises(NeedsReauthorization) as raised:
        get_access_token(advertiser_id="adv-1")
    assert raised.value.advertiser_id == "adv-1" and "adv-1" in str(raised.value)
    assert token not in str(raised.value) and token not in repr(raised.value)


@pytest.mark.parametrize("status", ["connected", None])
def test_stale_token_otherwise_means_the_refresher_is_late(clock, status):
    if status:
        put_advertiser("adv-1", status)
    put_token("adv-1", T0 + 60)
    with pytest.raises(TokenUnavailable, match="adv-1.*refresher has not renewed"):
        get_access_token(advertiser_id="adv-1")


def test_unknown_advertiser_and_unknown_profile(clock):
    with pytest.raises(AdvertiserNotFound, match="advertiser adv-unknown"):
        get_access_token(advertiser_id="adv-unknown")
    put_advertiser("adv-invited", "invited")  # invited but never connected: no secret yet
    with pytest.raises(AdvertiserNotFound):
        get_access_token(advertiser_id="adv-invited")
    with pytest.raises(AdvertiserNotFound, match="profile 999") as raised:
        get_access_token(profile_id=999)
    assert raised.value.profile_id == 999 and raised.value.advertiser_id is None


def test_no_secret_but_revoked_advertiser_needs_reauthorization(clock):
    put_advertiser("adv-1", "revoked")
    with pytest.raises(NeedsReauthorization):
        get_access_token(advertiser_id="adv-1")


@pytest.mark.parametrize("value", ['{"access_token": "Atza|leak-me-not"}', "Atza|leak-me-not", '["Atza|leak-me-not"]'])
def test_malformed_secret_is_unavailable_without_quoting_it(clock, value):
    put_advertiser("adv-1")  # an unknown advertiser's secret is not even read
    boto3.client("secretsmanager").create_secret(Name=f"{PREFIX}access/adv-1", SecretString=value)
    remember("Atza|leak-me-not")
    with pytest.raises(TokenUnavailable) as raised:
        get_access_token(advertiser_id="adv-1")
    assert "leak-me-not" not in str(raised.value) and raised.value.__cause__ is None
    assert raised.value.__context__ is None


# --- packs ---------------------------------------------------------------------------------------
def test_a_packed_advertisers_token_is_its_entry_in_the_pack(clock, reads):
    put_packed("adv-2", "p1", T0 + 3600)  # another member
    token = put_packed("adv-1", "p1", T0 + 3000)
    info = get_token_info(advertiser_id="adv-1")
    assert (info.value, info.expires_at, info.advertiser_id) == (token, T0 + 3000, "adv-1")
    assert reads["n"] == 1  # the pack only: the advertiser has no secret of its own


def test_advertisers_of_one_pack_cost_one_read_of_it_and_two_item_reads_each(clock, reads, item_reads):
    tokens = {a: put_packed(a, "p1", T0 + 3600) for a in ("adv-1", "adv-2", "adv-3")}
    for advertiser_id, token in tokens.items():
        assert get_access_token(advertiser_id=advertiser_id) == token
    # each: where its token is (before the read), and its status again after it
    assert reads["n"] == 1 and item_reads["n"] == 6
    clock.now += 301  # the pack's copy is as old as the tokens taken from it: both are read again
    assert get_access_token(advertiser_id="adv-2") == tokens["adv-2"]
    assert reads["n"] == 2
    clear_cache()
    assert not client._packs


def test_a_token_from_a_cached_pack_is_kept_no_longer_than_the_pack(clock, reads):
    put_packed("adv-1", "p1", T0 + 3600)
    put_packed("adv-2", "p1", T0 + 3600)
    get_access_token(advertiser_id="adv-1")  # the pack is read at T0
    clock.now += 240
    get_access_token(advertiser_id="adv-2")  # from the copy read at T0
    renewed = put_entry("p1", "adv-2", T0 + 3900)
    clock.now += 61  # five minutes after the pack was read, one after adv-2's token was taken from it
    assert get_access_token(advertiser_id="adv-2") == renewed
    assert reads["n"] == 2


def test_a_cached_pack_is_read_again_for_an_entry_it_lacks_or_holds_without_the_time_left(clock, reads):
    put_packed("adv-1", "p1", T0 + 3600)
    put_packed("adv-2", "p1", T0 + 11 * 60)
    get_access_token(advertiser_id="adv-1")  # the pack is cached, adv-2's entry with 11 minutes left
    clock.now += 120  # 9 minutes left in the copy: not enough for a 10-minute caller
    renewed = put_entry("p1", "adv-2", clock.now + 3600)
    assert get_access_token(advertiser_id="adv-2") == renewed
    joined = put_packed("adv-3", "p1", T0 + 3600)  # joined after the copy was read
    assert get_access_token(advertiser_id="adv-3") == joined
    assert reads["n"] == 3


def test_an_entry_gone_from_the_pack_is_read_from_the_own_secret(clock, reads):
    put_packed("adv-2", "p1", T0 + 3600)
    put_packed("adv-1", "p1", T0 + 3000)
    own = {}

    def move_out():  # the whole move to its own secret, between the item read and the pack read
        own["token"] = put_token("adv-1", T0 + 3600)
        point("adv-1", None)
        remove_entry("p1", "adv-1")

    after_first_item_read(move_out)
    assert get_access_token(advertiser_id="adv-1") == own["token"]
    assert reads["n"] == 2


def test_a_missing_own_secret_reads_the_item_again_and_finds_the_pack(clock, reads, item_reads):
    put_token("adv-1", T0 + 3000)
    moved = {}

    def move_in():  # the whole move into a pack, between the item read and the secret read
        moved["token"] = put_entry("p1", "adv-1", T0 + 3600)
        point("adv-1", "p1")
        delete_own("adv-1")

    after_first_item_read(move_in)
    assert get_access_token(advertiser_id="adv-1") == moved["token"]
    assert reads["n"] == 2 and item_reads["n"] == 2


def test_missing_in_both_places_is_todays_error(clock, item_reads):
    put_advertiser("adv-1")
    point("adv-1", "p1")  # a pack without its entry, and no own secret
    put_packed("adv-2", "p1", T0 + 3600)
    with pytest.raises(AdvertiserNotFound):
        get_access_token(advertiser_id="adv-1")
    assert item_reads["n"] == 2  # read again once, to see where it points now
    put_advertiser("adv-3", "needs_reauth")
    point("adv-3", "p1")
    with pytest.raises(NeedsReauthorization):
        get_access_token(advertiser_id="adv-3")


def test_a_move_into_a_pack_and_out_again_never_leaves_a_gap(clock):
    """Each step as the refresher takes it (``adsauth.packs``), a read between every two: each
    finds a token, from where the item pointed when it was read."""
    put_packed("adv-0", "p1", T0 + 3600)
    get_access_token(advertiser_id="adv-0")  # the process holds a copy of the pack without adv-1

    def read() -> str:
        client._tokens.clear()  # a first use every time (the pack's copy stays)
        return get_access_token(advertiser_id="adv-1")

    own = put_token("adv-1", T0 + 3000)
    assert read() == own
    entry = put_entry("p1", "adv-1", T0 + 3600)  # into the pack: the entry first,
    assert read() == own
    point("adv-1", "p1")  # then the pointer,
    assert read() == entry
    delete_own("adv-1")  # then the own secret goes
    assert read() == entry
    clock.now += 200
    own = put_token("adv-1", T0 + 3900)  # out again: the own secret first,
    assert read() == entry
    point("adv-1", None)  # then the pointer,
    assert read() == own
    remove_entry("p1", "adv-1")  # then the entry goes
    assert read() == own


@pytest.mark.parametrize("status, error", [("revoked", NeedsReauthorization), ("cancelled", AdvertiserNotFound)])
def test_a_packed_advertiser_not_connected_is_refused_though_its_entry_remains(clock, status, error):
    token = put_packed("adv-2", "p1", T0 + 3600)
    member = put_packed("adv-1", "p1", T0 + 3600)
    assert get_access_token(advertiser_id="adv-2") == token
    put_advertiser("adv-2", status)  # its entry stays in the pack
    point("adv-2", "p1")
    clock.now += 301
    assert get_access_token(advertiser_id="adv-1") == member  # the pack is read again, adv-2's entry in it
    with pytest.raises(error) as raised:
        get_access_token(advertiser_id="adv-2")
    assert token not in str(raised.value) and token not in repr(raised.value)
    assert "adv-2" not in client._tokens


@pytest.mark.parametrize("entry", [{"a": "Atza|leak-me-not-1", "e": "soon"}, {"e": T0 + 3600},
                                   {"a": "Atza|leak-me-not-2"}, {"a": None, "e": T0 + 3600}])
def test_malformed_pack_entry_is_unavailable_without_quoting_it(clock, entry):
    put_advertiser("adv-1")
    remember(entry.get("a"))
    write_pack("p1", lambda _: {"adv-1": entry})
    point("adv-1", "p1")
    with pytest.raises(TokenUnavailable) as raised:
        get_access_token(advertiser_id="adv-1")
    assert "leak-me-not" not in str(raised.value) and "leak-me-not" not in repr(raised.value)
    assert raised.value.__cause__ is None and raised.value.__context__ is None


# --- profiles ------------------------------------------------------------------------------------
def test_profile_id_resolves_to_its_advertiser_and_is_cached(clock):
    put_profile("adv-old", 1234567890, seen_at=T0 - 100)
    put_profile("adv-1", 1234567890, seen_at=T0)  # the grant that saw it last wins
    token = put_token("adv-1", T0 + 3600)
    queries = {"n": 0}
    client._store().client.meta.events.register("before-call.dynamodb.Query", lambda **_: queries.update(n=queries["n"] + 1))
    assert get_access_token(profile_id=1234567890) == token
    assert get_token_info(profile_id=1234567890).advertiser_id == "adv-1"
    assert queries["n"] == 1


def test_a_profile_that_moved_to_a_new_grant_is_looked_up_again(clock):
    put_advertiser("adv-old", "needs_reauth")
    put_profile("adv-old", 55, seen_at=T0 - 100)
    put_token("adv-old", T0 - 60)
    with pytest.raises(NeedsReauthorization) as raised:
        get_access_token(profile_id=55)
    assert raised.value.advertiser_id == "adv-old"
    put_profile("adv-new", 55, seen_at=T0)  # the seller authorized again, as a new advertiser
    token = put_token("adv-new", T0 + 3600)
    assert get_access_token(profile_id=55) == token


def test_exactly_one_of_advertiser_and_profile():
    with pytest.raises(TypeError):
        get_access_token()
    with pytest.raises(TypeError):
        get_access_token(advertiser_id="adv-1", profile_id=1)


# --- configuration -------------------------------------------------------------------------------
def test_missing_variable_is_named(monkeypatch):
    monkeypatch.delenv("ADSAUTH_TABLE_NAME")
    clear_cache()
    with pytest.raises(ClientConfigurationError, match="ADSAUTH_TABLE_NAME \\(or TABLE_NAME\\) is required"):
        get_access_token(advertiser_id="adv-1")


def test_unprefixed_fallbacks_are_read(monkeypatch, clock):
    for name in ("TABLE_NAME", "SECRET_PREFIX", "LWA_CLIENT_ID"):
        monkeypatch.delenv(f"ADSAUTH_{name}")
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("SECRET_PREFIX", PREFIX)
    monkeypatch.setenv("ADSAUTH_MIN_REMAINING_MINUTES", "20")
    clear_cache()
    put_token("adv-1", T0 + 15 * 60)
    with pytest.raises(TokenUnavailable):  # 15 minutes left < the configured 20
        get_access_token(advertiser_id="adv-1")
    with pytest.raises(ClientConfigurationError, match="ADSAUTH_LWA_CLIENT_ID \\(or LWA_CLIENT_ID\\)"):
        AdsApiSession(1, region="NA")


@pytest.mark.parametrize("value", ["ten", "-1", "60"])
def test_bad_minimum_is_refused(monkeypatch, value):
    monkeypatch.setenv("ADSAUTH_MIN_REMAINING_MINUTES", value)
    clear_cache()
    with pytest.raises(ClientConfigurationError, match="ADSAUTH_MIN_REMAINING_MINUTES"):
        get_access_token(advertiser_id="adv-1")


# --- no token in any text ------------------------------------------------------------------------
def test_reprs_and_messages_never_show_a_token(clock):
    token = put_token("adv-1", T0 + 3600)
    info = get_token_info(advertiser_id="adv-1")
    assert token not in repr(info) and token not in str(info) and "adv-1" in repr(info)
    session = AdsApiSession(42, region="EU")
    assert token not in repr(session) and repr(session) == "AdsApiSession(profile_id=42, region=EU)"
    errors = [AdvertiserNotFound(advertiser_id="adv-1"), NeedsReauthorization("adv-1"), TokenUnavailable("adv-1"),
              AdsApiRejected("adv-1", 42, status=401), AdsApiUnreachable(profile_id=42, reason="timeout"),
              ClientConfigurationError("environment variable ADSAUTH_TABLE_NAME (or TABLE_NAME) is required")]
    for error in errors:
        assert isinstance(error, AdsAuthClientError) and token not in str(error) and token not in repr(error)
    assert str(errors[3]) == "the Ads API rejected the request for profile 42 (HTTP 401)" and errors[3].status == 401
    assert str(AdvertiserNotFound(profile_id=7)) == "profile 7 belongs to no known advertiser"


def test_packed_tokens_never_show_in_reprs_or_messages(clock):
    token = put_packed("adv-1", "p1", T0 + 3600)
    stale = put_packed("adv-2", "p1", T0 + 60)
    info = get_token_info(advertiser_id="adv-1")
    assert token not in repr(info) and token not in str(info)
    raised = []
    for advertiser_id, status in (("adv-2", "connected"), ("adv-2", "needs_reauth"), ("adv-1", "revoked")):
        put_advertiser(advertiser_id, status)
        point(advertiser_id, "p1")
        clear_cache()
        with pytest.raises(AdsAuthClientError) as error:
            get_access_token(advertiser_id=advertiser_id)
        raised.append(error.value)
    assert [type(e) for e in raised] == [TokenUnavailable, NeedsReauthorization, NeedsReauthorization]
    for error in raised:
        text = f"{error} {error!r} {error.__dict__!r}"
        assert token not in text and stale not in text


# --- Ads API session -----------------------------------------------------------------------------
class Raw:
    def __init__(self, status, body=b"", headers=None):
        self.status, self.data, self.headers = status, body, headers or {}


class ScriptedPool:
    def __init__(self, *script):
        self.script = list(script)
        self.requests = []

    def request(self, method, url, **kwargs):
        self.requests.append((method, url, kwargs))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def scripted(*script) -> tuple[HttpClient, list[float]]:
    sleeps: list[float] = []
    http = HttpClient(timeout_seconds=1, max_attempts=3, backoff_cap_seconds=2, sleep=sleeps.append)
    http.pool = ScriptedPool(*script)
    return http, sleeps


def test_session_sends_token_client_id_and_scope_to_the_profiles_regional_host(clock):
    put_profile("adv-1", 77, region="EU")
    token = put_token("adv-1", T0 + 3600)
    http, _ = scripted(Raw(200, b'{"campaigns": []}'))
    response = AdsApiSession(77, http=http).request("POST", "/sp/campaigns/list", json={"maxResults": 10},
                                                    params={"a": "b"})
    assert response.status == 200 and response.json() == {"campaigns": []}
    method, url, kwargs = http.pool.requests[0]
    assert (method, url) == ("POST", "https://ads-eu.test/sp/campaigns/list?a=b")
    assert kwargs["headers"]["Authorization"] == f"Bearer {token}"
    assert kwargs["headers"]["Amazon-Advertising-API-ClientId"] == CLIENT_ID
    assert kwargs["headers"]["Amazon-Advertising-API-Scope"] == "77"
    assert json.loads(kwargs["body"]) == {"maxResults": 10}


def test_list_profiles_omits_the_scope_header(clock):
    put_profile("adv-1", 77)
    put_token("adv-1", T0 + 3600)
    http, _ = scripted(Raw(200, b'[{"profileId": 77}]'))
    assert AdsApiSession(77, region="fe", http=http).list_profiles() == [{"profileId": 77}]
    _, url, kwargs = http.pool.requests[0]
    assert url == "https://ads-fe.test/v2/profiles" and "Amazon-Advertising-API-Scope" not in kwargs["headers"]


def test_429_is_retried_after_retry_after(clock):
    put_profile("adv-1", 77)
    put_token("adv-1", T0 + 3600)
    http, sleeps = scripted(Raw(429, headers={"Retry-After": "1.5"}), Raw(200, b"[]"))
    assert AdsApiSession(77, http=http).list_profiles() == []
    assert sleeps == [1.5]


def test_a_create_is_not_resent_after_a_5xx_or_timeout(clock):
    put_profile("adv-1", 77)
    put_token("adv-1", T0 + 3600)
    http, _ = scripted(Raw(503))
    assert AdsApiSession(77, http=http).request("POST", "/sp/campaigns", json=[{}]).status == 503
    http, _ = scripted(urllib3.exceptions.ReadTimeoutError(None, "/", "timed out"))
    with pytest.raises(AdsApiUnreachable, match="timeout"):
        AdsApiSession(77, http=http).request("POST", "/sp/campaigns", json=[{}])
    http, _ = scripted(Raw(503), Raw(503), Raw(503))
    with pytest.raises(AdsApiUnreachable, match="status_503"):
        AdsApiSession(77, http=http).request("GET", "/sp/campaigns")


def test_401_rereads_the_token_once_then_succeeds(clock, reads):
    put_profile("adv-1", 77)
    put_token("adv-1", T0 + 3600)
    get_access_token(profile_id=77)
    renewed = put_token("adv-1", T0 + 3700)
    http, _ = scripted(Raw(401), Raw(200, b"[]"))
    assert AdsApiSession(77, http=http).list_profiles() == []
    assert http.pool.requests[1][2]["headers"]["Authorization"] == f"Bearer {renewed}"
    assert reads["n"] == 2


def test_401_rereads_a_packed_token_past_both_caches(clock, reads):
    put_profile("adv-1", 77)
    put_packed("adv-2", "p1", T0 + 3600)
    put_packed("adv-1", "p1", T0 + 3600)
    get_access_token(profile_id=77)  # cached: the token, and the pack
    renewed = put_entry("p1", "adv-1", T0 + 3700)
    http, _ = scripted(Raw(401), Raw(200, b"[]"))
    assert AdsApiSession(77, http=http).list_profiles() == []
    assert http.pool.requests[1][2]["headers"]["Authorization"] == f"Bearer {renewed}"
    assert reads["n"] == 2
    assert get_access_token(advertiser_id="adv-2") and reads["n"] == 2  # the pack read anew is cached


@pytest.mark.parametrize("status, error", [("connected", AdsApiRejected), ("needs_reauth", NeedsReauthorization)])
def test_second_401_is_a_typed_error(clock, status, error):
    put_advertiser("adv-1", status)
    put_profile("adv-1", 77)
    token = put_token("adv-1", T0 + 3600)
    http, _ = scripted(Raw(401), Raw(401))
    with pytest.raises(error) as raised:
        AdsApiSession(77, http=http).request("GET", "/v2/profiles/77")
    assert raised.value.profile_id == 77 and token not in str(raised.value)


def test_session_refuses_absolute_urls(clock):
    put_profile("adv-1", 77)
    put_token("adv-1", T0 + 3600)
    http, _ = scripted()
    for path in ("https://evil.example/x", "//evil.example/x"):
        with pytest.raises(ValueError):
            AdsApiSession(77, http=http).request("GET", path)
    assert http.pool.requests == []


def test_access_token_dataclass_is_frozen():
    token = AccessToken("Atza|x" * 4, T0, "adv-1")
    with pytest.raises(AttributeError):
        token.value = "other"  # type: ignore[misc]


@pytest.mark.parametrize("status, error", [("revoked", NeedsReauthorization), ("invited", AdvertiserNotFound),
                                           ("cancelled", AdvertiserNotFound), ("failed", AdvertiserNotFound)])
def test_a_token_left_by_a_lost_race_is_never_served(clock, status, error):
    """A secret of an advertiser that is not connected (a completion that lost against a revoke
    or a cancel, being taken back) is not served, however much time it has left."""
    put_advertiser("adv-left", status)
    put_token("adv-left", T0 + 3000)
    with pytest.raises(error):
        get_access_token(advertiser_id="adv-left")


def test_a_needs_reauth_advertisers_last_token_serves_while_it_lasts(clock):
    put_advertiser("adv-last", "needs_reauth")
    token = put_token("adv-last", T0 + 3000)
    assert get_access_token(advertiser_id="adv-last") == token
    clock.now = T0 + 2990
    clear_cache()
    with pytest.raises(NeedsReauthorization):
        get_access_token(advertiser_id="adv-last")


@pytest.mark.parametrize("packed", [True, False])
def test_a_revoke_between_the_status_and_the_token_read_is_seen_before_the_token_is_served(clock, monkeypatch, packed):
    """A revoke marks the advertiser first and deletes its tokens after: a read that saw it still
    connected and then found the token must ask again before it serves it."""
    if packed:
        put_packed("adv-1", "p1", T0 + 3600)
    else:
        put_token("adv-1", T0 + 3600)
    read = client._read_token

    def revoked_meanwhile(*args, **kwargs):
        found = read(*args, **kwargs)
        boto3.resource("dynamodb").Table(TABLE).update_item(
            Key=schema.advertiser_key("adv-1"), UpdateExpression="SET #s = :r",
            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":r": "revoked"})
        return found

    monkeypatch.setattr(client, "_read_token", revoked_meanwhile)
    with pytest.raises(NeedsReauthorization):
        get_access_token(advertiser_id="adv-1")
    assert "adv-1" not in client._tokens
