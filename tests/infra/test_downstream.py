"""The example consumer (infra/consumer_example.py), granted the way another CDK app is granted:
``AdsAuthTokens.from_stack`` reads the coordinates the AdsAuth stack publishes in SSM, and
``grant_read_tokens`` gives its role exactly the token reader's statements. Its role reads access
tokens and looks advertisers up, and can do nothing else with adsauth's data.

The consumer template is read as deployed: its SSM parameters resolved to what the AdsAuth template
publishes, both in the same fake account and region (tests/iam/template.py).
"""

from __future__ import annotations

import fnmatch

import pytest

from infra.consumer_example import HANDLER_SOURCE
from tests.iam.template import Template, secret_arn
from tests.infra.cfn import as_list, functions_by_handler, only, resources, role_of, walk
from tests.infra.conftest import CLIENT_ID

SECRETS = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
ACCESS = SECRETS + "adsauth/AdsAuth/advertisers/access/*"
# What the consumer's role may carry besides the grant: its own log group and X-Ray.
OWN = {("logs:CreateLogStream", "logs:PutLogEvents"), ("xray:PutTelemetryRecords", "xray:PutTraceSegments")}


@pytest.fixture(scope="module")
def producer(cfn) -> Template:
    return Template(cfn, "AdsAuth")


@pytest.fixture(scope="module")
def consumer(consumer_cfn, producer) -> Template:
    return Template(consumer_cfn, "AdsAuthExampleConsumer", imports=producer.exports())


def _statements(consumer: Template) -> list[dict]:
    (fn,) = consumer.functions().values()
    return [
        {
            "actions": sorted(as_list(s["Action"])),
            "resources": sorted(as_list(s["Resource"])),
            "effect": s["Effect"],
            "condition": s.get("Condition"),
        }
        for document in fn.identity_policies
        for s in document["Statement"]
    ]


def _can(statements: list[dict], action: str, resource: str) -> bool:
    return any(
        s["effect"] == "Allow"
        and any(fnmatch.fnmatch(action.lower(), a.lower()) for a in s["actions"])
        and any(fnmatch.fnmatch(resource, r) for r in s["resources"])
        for s in statements
    )


def test_grant_read_tokens_gives_exactly_three_statements(consumer, producer, cfn):
    table = producer.get_att(only(cfn, "AWS::DynamoDB::Table")[0], "Arn")
    key = producer.get_att(only(cfn, "AWS::KMS::Key")[0], "Arn")
    grant = [s for s in _statements(consumer) if tuple(s["actions"]) not in OWN]
    for s in grant:
        s.pop("condition")
    assert sorted(grant, key=lambda s: s["actions"]) == [
        {"actions": ["dynamodb:GetItem", "dynamodb:Query"], "resources": [table, table + "/index/byProfile"], "effect": "Allow"},
        {"actions": ["kms:Decrypt"], "resources": [key], "effect": "Allow"},
        {"actions": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"], "resources": [ACCESS], "effect": "Allow"},
    ]


def test_consumer_decrypts_only_access_tokens_and_only_through_secrets_manager(consumer):
    (statement,) = [s for s in _statements(consumer) if "kms:Decrypt" in s["actions"]]
    assert statement["condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:SecretARN": [ACCESS]},
    }


def test_consumer_reads_access_tokens_only(consumer, producer, cfn):
    statements = _statements(consumer)
    access = secret_arn("adsauth/AdsAuth/advertisers/access/adv-1")
    pack = secret_arn("adsauth/AdsAuth/advertisers/access/packs/p1")
    refresh = secret_arn("adsauth/AdsAuth/advertisers/refresh/adv-1")
    refresh_pack = secret_arn("adsauth/AdsAuth/advertisers/refresh/packs/p1")
    client_secret = producer.ref(only(cfn, "AWS::SecretsManager::Secret")[0])
    other_stack = secret_arn("adsauth/AdsAuthDomain/advertisers/access/adv-1")

    for resource in (access, pack):
        assert _can(statements, "secretsmanager:GetSecretValue", resource)
        for action in ("PutSecretValue", "CreateSecret", "UpdateSecret", "DeleteSecret"):
            assert not _can(statements, f"secretsmanager:{action}", resource), action
    for resource in (refresh, refresh_pack, client_secret, other_stack):
        for action in ("GetSecretValue", "DescribeSecret", "PutSecretValue", "CreateSecret"):
            assert not _can(statements, f"secretsmanager:{action}", resource), (action, resource)
    # Every Secrets Manager statement is on the access pattern and nothing else.
    for s in statements:
        if any(a.startswith("secretsmanager:") for a in s["actions"]):
            assert s["resources"] == [ACCESS]


def test_consumer_has_no_table_write_or_scan(consumer, producer, cfn):
    table = producer.get_att(only(cfn, "AWS::DynamoDB::Table")[0], "Arn")
    statements = _statements(consumer)
    dynamodb_actions = {a for s in statements for a in s["actions"] if a.startswith("dynamodb:")}
    assert dynamodb_actions == {"dynamodb:GetItem", "dynamodb:Query"}
    assert _can(statements, "dynamodb:Query", table + "/index/byProfile")
    for index in ("byExpiry", "byKind"):  # only what downstream needs
        assert not _can(statements, "dynamodb:Query", f"{table}/index/{index}")
    for action in ("Scan", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "PartiQLUpdate"):
        assert not _can(statements, f"dynamodb:{action}", table), action


def test_consumer_has_nothing_else(consumer, consumer_cfn):
    statements = _statements(consumer)
    services = {a.split(":")[0] for s in statements for a in s["actions"]}
    assert services == {"logs", "xray", "secretsmanager", "dynamodb", "kms"}
    assert all(s["effect"] == "Allow" for s in statements)
    (fn,) = functions_by_handler(consumer_cfn).values()
    assert not consumer_cfn["Resources"][role_of(fn)]["Properties"].get("ManagedPolicyArns")


def test_consumer_function_gets_the_client_variables_and_nothing_secret(consumer, producer, cfn):
    (fn,) = consumer.functions().values()
    assert fn.environment == {
        "ADSAUTH_TABLE_NAME": producer.ref(only(cfn, "AWS::DynamoDB::Table")[0]),
        "ADSAUTH_SECRET_PREFIX": "adsauth/AdsAuth/advertisers/",
        "ADSAUTH_LWA_CLIENT_ID": CLIENT_ID,
    }


def test_consumer_runs_inline_code_on_the_adsauth_client_layer(consumer_cfn):
    (fn,) = functions_by_handler(consumer_cfn).values()
    props = fn["Properties"]
    assert props["Handler"] == "index.handler"
    assert props["Code"]["ZipFile"] == HANDLER_SOURCE
    assert len(HANDLER_SOURCE.encode()) < 4096  # Lambda's limit for inline code
    compile(HANDLER_SOURCE, "index.py", "exec")
    assert "from adsauth.client import" in HANDLER_SOURCE
    layer_id, layer = only(consumer_cfn, "AWS::Lambda::LayerVersion")
    assert props["Layers"] == [{"Ref": layer_id}]
    assert props["Runtime"] in layer["Properties"]["CompatibleRuntimes"]
    assert set(props["Architectures"]) <= set(layer["Properties"]["CompatibleArchitectures"])


def test_the_consumer_reads_what_the_adsauth_stack_publishes_and_no_export(consumer_cfn, cfn, producer):
    read = {
        p["Default"] for p in consumer_cfn["Parameters"].values()
        if p["Type"] == "AWS::SSM::Parameter::Value<String>" and p["Default"].startswith("/adsauth/")
    }
    assert read and read <= set(producer.exports())
    assert all(name.startswith("/adsauth/AdsAuth/") for name in read)
    assert not [v for k, v in walk(consumer_cfn) if k == "Fn::ImportValue"]
    assert not [o for o in cfn.get("Outputs", {}).values() if "Export" in o]
    assert not resources(consumer_cfn, "AWS::DynamoDB::Table")
    assert not resources(consumer_cfn, "AWS::SecretsManager::Secret")
