"""What the stack configures, the deployed code honours: the functions parse the variables the
stack sets (SECRETS_KMS_KEY_ID, REFRESH_SECRET_READERS), the vault creates secrets with the key and
puts the readers-only policy on refresh-token secrets, the refresher's write of an advertiser's
access token never creates its secret (a secret that is gone was revoked), and the dispatcher
emits the metric the ``token-expired`` alarm watches."""

from __future__ import annotations

import importlib
import json
import sys
import time
from decimal import Decimal

import boto3
import pytest
from moto import mock_aws

import adsauth.handlers
from adsauth import schema
from adsauth.adapters.table import DynamoStore, expiry_shard, iso
from adsauth.adapters.vault import SecretsManagerVault
from adsauth.errors import TokensDeleted
from adsauth.models import DueAdvertiser, DueSchedule, TokenSet
from adsauth.settings import ACCESS_TOKEN_SECONDS, settings_from_env
from infra.constants import METRICS_NAMESPACE, OLDEST_TOKEN_AGE_METRIC
from local.gateway import LambdaContext
from tests.infra.cfn import functions_by_handler, render

CALLBACK = "adsauth.handlers.callback.handler"
WORKER = "adsauth.handlers.worker.handler"
READERS = (
    "arn:aws:iam::123456789012:root",
    "arn:aws:iam::123456789012:role/adsauth/AdsAuth/refresh-token-readers/*",
)


def _env(cfn: dict, handler: str) -> dict[str, str]:
    variables = functions_by_handler(cfn)[handler]["Properties"]["Environment"]["Variables"]
    return {k: render(v) for k, v in variables.items()}


def test_the_functions_parse_the_secret_settings_the_stack_gives_them(cfn, domain_cfn):
    key_id = next(k for k, r in cfn["Resources"].items() if r["Type"] == "AWS::KMS::Key")
    callback = settings_from_env(_env(cfn, CALLBACK))
    assert callback.secrets_kms_key_id == "${" + key_id + ".Arn}"
    assert callback.refresh_secret_readers == (
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:root",
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/adsauth/AdsAuth/refresh-token-readers/*",
    )
    # the worker creates refresh-token secrets too (a pack's, a leaver's own): the same key, the
    # same readers
    worker = settings_from_env(_env(cfn, WORKER))
    assert worker.secrets_kms_key_id == callback.secrets_kms_key_id
    assert worker.refresh_secret_readers == callback.refresh_secret_readers
    for handler in (CALLBACK, WORKER):
        assert len(settings_from_env(_env(domain_cfn, handler)).refresh_secret_readers) == 3  # + operator


def test_without_the_variables_nothing_changes():
    settings = settings_from_env(
        {"TABLE_NAME": "t", "PUBLIC_BASE_URL": "https://x", "LWA_CLIENT_ID": "c", "LWA_CLIENT_SECRET_NAME": "n", "SECRET_PREFIX": "p/"}
    )
    assert (settings.secrets_kms_key_id, settings.refresh_secret_readers) == ("", ())


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # not reset: moto's in-process backends are the session stack's moto server too (another
    # region keeps them apart), so this removes what it made instead
    mock = mock_aws()
    mock.start(reset=False)
    try:
        yield
    finally:
        client = boto3.client("secretsmanager")
        for page in client.get_paginator("list_secrets").paginate():
            for secret in page["SecretList"]:
                client.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
        mock.stop(remove_data=False)


def test_the_vault_creates_secrets_with_the_key_and_protects_refresh_tokens(aws):
    key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    client = boto3.client("secretsmanager")
    vault = SecretsManagerVault(client=client, prefix="adsauth/AdsAuth/advertisers/", kms_key_id=key, refresh_readers=READERS)

    tokens = TokenSet(access_token="Atza|access", refresh_token="Atzr|first", expires_at=3600.0)
    vault.put_grant("adv-1", tokens, issued_at=1.0)

    refresh, access = (vault.refresh_secret_name("adv-1"), vault.access_secret_name("adv-1"))
    assert client.describe_secret(SecretId=refresh)["KmsKeyId"] == key
    assert client.describe_secret(SecretId=access)["KmsKeyId"] == key
    (statement,) = json.loads(client.get_resource_policy(SecretId=refresh)["ResourcePolicy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == {"AWS": "*"}
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Condition"] == {"StringNotLike": {"aws:PrincipalArn": list(READERS)}}
    assert "ResourcePolicy" not in client.get_resource_policy(SecretId=access)  # downstream reads these


def test_the_refreshers_write_never_creates_a_secret(aws):
    """The refresh of an advertiser's own tokens writes into the secret the exchange created, or
    gives up: a secret that is gone was revoked, and is never created again here (the worker may
    create secrets, for packs and advertisers leaving one, so it is the code that holds this)."""
    client = boto3.client("secretsmanager")
    vault = SecretsManagerVault(client=client, prefix="adsauth/AdsAuth/advertisers/")
    with pytest.raises(TokensDeleted):
        vault.put_access_token("adv-gone", "Atza|access", expires_at=3600.0)
    assert client.list_secrets()["SecretList"] == []


def test_a_new_grant_puts_the_current_readers_again(aws):
    client = boto3.client("secretsmanager")
    SecretsManagerVault(client=client, prefix="p/").put_refresh_token("adv-1", "Atzr|old", issued_at=1.0)
    assert "ResourcePolicy" not in client.get_resource_policy(SecretId="p/refresh/adv-1")  # local stack

    SecretsManagerVault(client=client, prefix="p/", refresh_readers=READERS).put_refresh_token(
        "adv-1", "Atzr|new", issued_at=2.0
    )
    policy = json.loads(client.get_resource_policy(SecretId="p/refresh/adv-1")["ResourcePolicy"])
    assert policy["Statement"][0]["Condition"]["StringNotLike"]["aws:PrincipalArn"] == list(READERS)


def test_the_due_index_brings_the_token_expiry_along(aws):
    boto3.client("dynamodb").create_table(**schema.create_table_request("t"))
    table = boto3.resource("dynamodb").Table("t")
    now = time.time()
    for advertiser_id, expires in (("adv-old", now - 600), ("adv-new", now + 300)):
        table.put_item(
            Item={
                **schema.advertiser_key(advertiser_id),
                "advertiser_id": advertiser_id,
                schema.EXPIRY_INDEX_PK: expiry_shard(advertiser_id),
                schema.EXPIRY_INDEX_SK: iso(expires),
                "token_expires_at": Decimal(str(round(expires, 3))),
            }
        )
    due = DynamoStore(table=table, schedule=DueSchedule()).due_advertisers(now + 720)
    assert sorted((d.advertiser_id, round(d.token_expires_at)) for d in due) == [
        ("adv-new", round(now + 300)),
        ("adv-old", round(now - 600)),
    ]


DISPATCHER = "adsauth.handlers.dispatcher"


@pytest.fixture
def dispatcher(monkeypatch):
    """The dispatcher module imported afresh (a handler keeps the metrics namespace of the
    environment it was first imported in) and forgotten afterwards."""
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    monkeypatch.delitem(sys.modules, DISPATCHER, raising=False)
    monkeypatch.delattr(adsauth.handlers, "dispatcher", raising=False)
    module = importlib.import_module(DISPATCHER)
    yield module
    sys.modules.pop(DISPATCHER, None)
    if getattr(adsauth.handlers, "dispatcher", None) is module:
        delattr(adsauth.handlers, "dispatcher")


class StubRefresher:
    """Refresher.dispatch_due's contract: on_due sees the due advertisers, the count comes back."""

    def __init__(self, due: list[DueAdvertiser]) -> None:
        self.due = due
        self.dispatched_at: float | None = None

    def dispatch_due(self, now: float, *, on_due=None, lease_seconds: float = 60.0) -> int:
        self.dispatched_at = now
        if on_due is not None:
            on_due(list(self.due))
        return len(self.due)

    def relay_events(self) -> int:
        return 0


def _emitted(capsys) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for line in capsys.readouterr().out.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == METRICS_NAMESPACE
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values.setdefault(metric["Name"], []).extend(value if isinstance(value, list) else [value])
    return values


def test_the_dispatcher_reports_the_oldest_due_tokens_age(dispatcher, monkeypatch, capsys):
    at = 1_800_000_000.0
    stub = StubRefresher(
        [
            DueAdvertiser("stuck", "s1", token_expires_at=at - 900),  # expired 15 minutes ago
            DueAdvertiser("due", "s2", token_expires_at=at + 600),
            DueAdvertiser("profiles-only", "s3", token_expires_at=None),
        ]
    )
    monkeypatch.setattr(dispatcher, "refresher", lambda: stub)
    monkeypatch.setattr(dispatcher, "now", lambda: at)
    capsys.readouterr()
    assert dispatcher.handler({}, LambdaContext("adsauth-test-dispatcher", "us-east-1", time.monotonic() + 60))[
        "dispatched"
    ] == 3
    assert stub.dispatched_at == at  # the age is measured at the run's own "now"
    emitted = _emitted(capsys)
    assert emitted[OLDEST_TOKEN_AGE_METRIC] == [ACCESS_TOKEN_SECONDS + 900]  # ≥ lifetime: alarm
    assert emitted["RefreshDispatched"] == [3]


def test_no_due_token_no_figure(dispatcher, monkeypatch, capsys):
    monkeypatch.setattr(dispatcher, "refresher", lambda: StubRefresher([]))
    capsys.readouterr()
    dispatcher.handler({}, LambdaContext("adsauth-test-dispatcher", "us-east-1", time.monotonic() + 60))
    assert OLDEST_TOKEN_AGE_METRIC not in _emitted(capsys)


def test_a_failing_figure_never_stops_the_run(dispatcher, monkeypatch, capsys):
    monkeypatch.setattr(dispatcher, "refresher", lambda: StubRefresher([DueAdvertiser("a", "s", 1.0)]))
    monkeypatch.setattr(dispatcher, "oldest_token_age", lambda due, at: 1 / 0)
    assert dispatcher.handler({}, LambdaContext("adsauth-test-dispatcher", "us-east-1", time.monotonic() + 60))[
        "dispatched"
    ] == 1
    assert OLDEST_TOKEN_AGE_METRIC not in _emitted(capsys)


class OneQueryStore:
    def __init__(self, due: list[DueAdvertiser]) -> None:
        self.due, self.queries, self.snoozed = due, 0, []

    def platform_paused_until(self, now):
        return None

    def acquire_dispatch_lease(self, owner, now, until):
        return True

    def release_dispatch_lease(self, owner):
        return True

    def due_advertisers(self, before):
        self.queries += 1
        return list(self.due)

    def snooze(self, entry, until):
        self.snoozed.append(entry.advertiser_id)
        return True


class ListQueue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, advertiser_ids):
        self.sent.extend(advertiser_ids)


def test_the_refresher_hands_the_run_its_due_advertisers_from_its_one_query():
    from adsauth.refresher import Refresher

    due = [DueAdvertiser("a", "s1", 1.0), DueAdvertiser("b", "s2", None)]
    store, queue, seen = OneQueryStore(due), ListQueue(), []
    settings = settings_from_env(
        {"TABLE_NAME": "t", "PUBLIC_BASE_URL": "https://x", "LWA_CLIENT_ID": "c", "LWA_CLIENT_SECRET_NAME": "n", "SECRET_PREFIX": "p/"}
    )
    flow = Refresher(settings=settings, store=store, vault=None, lwa=None, ads=None, notifier=None, queue=queue)
    assert flow.dispatch_due(1000.0, on_due=seen.append) == 2
    assert seen == [due] and store.queries == 1
    assert queue.sent == store.snoozed == ["a", "b"]
    assert flow.dispatch_due(1000.0) == 2  # on_due is optional


def test_the_ops_cli_reads_every_output_it_maps(cfn):
    """``adsauth --stack`` turns outputs into the variables the functions get: each one it maps
    exists, and the key reaches the CLI too (its ``refresh`` may create an access-token secret)."""
    from adsauth.cli import STACK_OUTPUTS

    # only when ses_sender, support_contact, footer_text are set
    outputs = set(cfn["Outputs"]) | {"SesFromAddress", "SupportContact", "FooterText"}
    assert set(STACK_OUTPUTS) <= outputs, set(STACK_OUTPUTS) - outputs
    assert STACK_OUTPUTS["SecretsKeyArn"] == "SECRETS_KMS_KEY_ID"


def test_the_local_gateway_gives_each_api_function_its_deployed_timeout(cfn):
    """The callback's time budget counts down from the function's timeout: the local stack's
    routes must give the handlers the deployed one (20 s), not API Gateway's 29 s."""
    from local.stack import ROUTES

    deployed = {fn["Properties"]["Handler"]: fn["Properties"]["Timeout"] for fn in functions_by_handler(cfn).values()}
    for route in ROUTES:
        handler = route.handler.replace(":", ".")
        assert route.function_timeout == deployed[handler], route
