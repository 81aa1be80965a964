"""``AdsAuthStack.grant_read_tokens``, seen through the example consumer: its role reads access
tokens and looks advertisers up, and can do nothing else with adsauth's data."""

from __future__ import annotations

import fnmatch

from infra.consumer_example import HANDLER_SOURCE
from tests.infra.cfn import (
    actions,
    as_list,
    functions_by_handler,
    only,
    render,
    render_imported,
    resources,
    role_of,
    role_statements,
)
from tests.infra.conftest import CLIENT_ID

PREFIX = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
ACCESS = PREFIX + "adsauth/AdsAuth/advertisers/access/*"
# What the consumer's role may carry besides the grant: its own log group and X-Ray.
OWN = {("logs:CreateLogStream", "logs:PutLogEvents"), ("xray:PutTelemetryRecords", "xray:PutTraceSegments")}


def _consumer_statements(consumer_cfn: dict, cfn: dict) -> list[dict]:
    (fn,) = functions_by_handler(consumer_cfn).values()
    statements = role_statements(consumer_cfn)[role_of(fn)]
    return [
        {
            "actions": sorted(actions(s)),
            "resources": sorted(render_imported(r, cfn) for r in as_list(s["Resource"])),
            "effect": s["Effect"],
        }
        for s in statements
    ]


def _can(statements: list[dict], action: str, resource: str) -> bool:
    return any(
        s["effect"] == "Allow"
        and any(fnmatch.fnmatch(action.lower(), a.lower()) for a in s["actions"])
        and any(fnmatch.fnmatch(resource, r) for r in s["resources"])
        for s in statements
    )


def test_grant_read_tokens_gives_exactly_three_statements(consumer_cfn, cfn):
    table_id, _ = only(cfn, "AWS::DynamoDB::Table")
    key_id, _ = only(cfn, "AWS::KMS::Key")
    grant = [
        s for s in _consumer_statements(consumer_cfn, cfn) if tuple(s["actions"]) not in OWN
    ]
    assert sorted(grant, key=lambda s: s["actions"]) == [
        {
            "actions": ["dynamodb:GetItem", "dynamodb:Query"],
            "resources": sorted(
                ["${" + table_id + ".Arn}", "${" + table_id + ".Arn}/index/byProfile"]
            ),
            "effect": "Allow",
        },
        {
            "actions": ["kms:Decrypt"],
            "resources": ["${" + key_id + ".Arn}"],
            "effect": "Allow",
        },
        {
            "actions": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
            "resources": [ACCESS],
            "effect": "Allow",
        },
    ]


def test_consumer_decrypts_only_access_tokens_and_only_through_secrets_manager(consumer_cfn, cfn):
    (fn,) = functions_by_handler(consumer_cfn).values()
    (statement,) = [
        s for s in role_statements(consumer_cfn)[role_of(fn)] if "kms:Decrypt" in actions(s)
    ]
    conditions = statement["Condition"]
    assert render_imported(conditions["StringEquals"]["kms:ViaService"], cfn) == (
        "secretsmanager.${AWS::Region}.amazonaws.com"
    )
    assert [render_imported(v, cfn) for v in as_list(conditions["StringLike"]["kms:EncryptionContext:SecretARN"])] == [ACCESS]


def test_consumer_reads_access_tokens_only(consumer_cfn, cfn):
    statements = _consumer_statements(consumer_cfn, cfn)
    secret_id, _ = only(cfn, "AWS::SecretsManager::Secret")
    access = PREFIX + "adsauth/AdsAuth/advertisers/access/adv-1-AbCdEf"
    refresh = PREFIX + "adsauth/AdsAuth/advertisers/refresh/adv-1-AbCdEf"
    client_secret_arn = (
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:"
        "secret:adsauth/AdsAuth/lwa_client-AbCdEf"
    )

    assert _can(statements, "secretsmanager:GetSecretValue", access)
    for resource in (refresh, client_secret_arn, "${" + secret_id + "}"):
        for action in ("GetSecretValue", "DescribeSecret", "PutSecretValue", "CreateSecret"):
            assert not _can(statements, f"secretsmanager:{action}", resource), (action, resource)
    for action in ("PutSecretValue", "CreateSecret", "UpdateSecret", "DeleteSecret"):
        assert not _can(statements, f"secretsmanager:{action}", access), action
    # Every Secrets Manager statement is on the access pattern and nothing else.
    for s in statements:
        if any(a.startswith("secretsmanager:") for a in s["actions"]):
            assert s["resources"] == [ACCESS]


def test_consumer_has_no_table_write_or_scan(consumer_cfn, cfn):
    table_id, _ = only(cfn, "AWS::DynamoDB::Table")
    table = "${" + table_id + ".Arn}"
    statements = _consumer_statements(consumer_cfn, cfn)
    dynamodb_actions = {a for s in statements for a in s["actions"] if a.startswith("dynamodb:")}
    assert dynamodb_actions == {"dynamodb:GetItem", "dynamodb:Query"}
    assert _can(statements, "dynamodb:Query", table + "/index/byProfile")
    for index in ("byExpiry", "byKind"):  # only what downstream needs
        assert not _can(statements, "dynamodb:Query", f"{table}/index/{index}")
    for action in ("Scan", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "PartiQLUpdate"):
        assert not _can(statements, f"dynamodb:{action}", table), action


def test_consumer_has_nothing_else(consumer_cfn, cfn):
    statements = _consumer_statements(consumer_cfn, cfn)
    services = {a.split(":")[0] for s in statements for a in s["actions"]}
    assert services == {"logs", "xray", "secretsmanager", "dynamodb", "kms"}
    assert all(s["effect"] == "Allow" for s in statements)
    (fn,) = functions_by_handler(consumer_cfn).values()
    assert not consumer_cfn["Resources"][role_of(fn)]["Properties"].get("ManagedPolicyArns")


def test_consumer_function_gets_the_client_variables_and_nothing_secret(consumer_cfn, cfn):
    (fn,) = functions_by_handler(consumer_cfn).values()
    env = {k: render_imported(v, cfn) for k, v in fn["Properties"]["Environment"]["Variables"].items()}
    table_id, _ = only(cfn, "AWS::DynamoDB::Table")
    assert env == {
        "ADSAUTH_TABLE_NAME": "${" + table_id + "}",
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
    assert [render(layer_ref) for layer_ref in props["Layers"]] == ["${" + layer_id + "}"]
    assert layer["Properties"]["CompatibleRuntimes"] == [props["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == props["Architectures"]


def test_the_consumer_uses_exports_of_the_adsauth_stack(consumer_cfn, cfn):
    exported = [o for o in cfn["Outputs"].values() if "Export" in o]
    assert exported, "the table reaches the consumer through CloudFormation exports"
    assert not resources(consumer_cfn, "AWS::DynamoDB::Table")
    assert not resources(consumer_cfn, "AWS::SecretsManager::Secret")
