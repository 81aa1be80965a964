"""Hardening: the customer-managed key of the secrets and its scoped key policy, KMS grants only
through Secrets Manager and only for the secrets each role handles, the readers-only resource
policies, and RETAIN on everything that holds state."""

from __future__ import annotations

import fnmatch

import pytest

from tests.infra.cfn import (
    actions,
    all_statements,
    as_list,
    functions_by_handler,
    only,
    render,
    resources,
    role_of,
    role_statements,
)
from tests.infra.conftest import OPERATOR_ARN

CONNECT = "adsauth.handlers.connect.handler"
CALLBACK = "adsauth.handlers.callback.handler"
DISPATCHER = "adsauth.handlers.dispatcher.handler"
WORKER = "adsauth.handlers.worker.handler"
VIA_SECRETS_MANAGER = "secretsmanager.${AWS::Region}.amazonaws.com"
ROOT = "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
CRYPTO = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant")
SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
VARIANTS = {"cfn": "AdsAuth", "domain_cfn": "AdsAuthDomain"}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request):
    return request.getfixturevalue(request.param), VARIANTS[request.param]


def _matches(action: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(action.lower(), p.lower()) for p in patterns)


def _readers(stack: str, operators: list[str]) -> list[str]:
    return [ROOT, f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/adsauth/{stack}/refresh-token-readers/*", *operators]


def test_secrets_key_rotates_and_outlives_the_stack(variant):
    cfn, stack = variant
    key_id, key = only(cfn, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"]["PendingWindowInDays"] == 30
    assert key["DeletionPolicy"] == "RetainExceptOnCreate"  # deleted only by a failed first deploy
    assert key["UpdateReplacePolicy"] == "Retain"
    _, alias = only(cfn, "AWS::KMS::Alias")
    assert alias["Properties"]["AliasName"] == f"alias/adsauth/{stack}/secrets"
    assert render(alias["Properties"]["TargetKeyId"]) == "${" + key_id + ".Arn}"


def test_key_policy_lets_the_account_administer_but_use_the_key_only_through_secrets_manager(variant):
    cfn, _ = variant
    _, key = only(cfn, "AWS::KMS::Key")
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert len(statements) == 2
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert render(statement["Principal"]["AWS"]) == ROOT
        granted = actions(statement)
        assert "kms:*" not in granted
        assert not _matches("kms:CreateGrant", granted)  # a grant would bypass kms:ViaService
        if any(_matches(a, granted) for a in CRYPTO):
            conditions = statement["Condition"]["StringEquals"]
            assert render(conditions["kms:ViaService"]) == VIA_SECRETS_MANAGER
            assert conditions["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
            assert sorted(granted) == ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
        else:  # administration, including the break glass (an admin may rewrite the policy)
            assert "kms:PutKeyPolicy" in granted and "kms:ScheduleKeyDeletion" in granted
            assert "Condition" not in statement


def test_the_client_secret_is_encrypted_with_the_key(variant):
    cfn, _ = variant
    key_id, _ = only(cfn, "AWS::KMS::Key")
    _, secret = only(cfn, "AWS::SecretsManager::Secret")
    assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_functions_that_create_secrets_create_them_with_the_key(variant):
    cfn, _ = variant
    key_id, _ = only(cfn, "AWS::KMS::Key")
    for handler, fn in functions_by_handler(cfn).items():
        env = fn["Properties"]["Environment"]["Variables"]
        if handler in (CALLBACK, WORKER):  # the only ones with secretsmanager:CreateSecret
            assert env["SECRETS_KMS_KEY_ID"] == {"Fn::GetAtt": [key_id, "Arn"]}
        else:
            assert "SECRETS_KMS_KEY_ID" not in env


def _kms_statements(cfn: dict, role_id: str) -> list[dict]:
    return [s for s in role_statements(cfn)[role_id] if any(a.startswith("kms:") for a in actions(s))]


def test_every_kms_grant_is_through_secrets_manager_for_named_secrets(variant):
    cfn, _ = variant
    key_id, _ = only(cfn, "AWS::KMS::Key")
    kms = [s for s in all_statements(cfn) if any(a.startswith("kms:") for a in actions(s))]
    assert kms
    for statement in kms:
        assert [render(r) for r in as_list(statement["Resource"])] == ["${" + key_id + ".Arn}"]
        assert set(actions(statement)) <= {"kms:Decrypt", "kms:GenerateDataKey"}
        assert render(statement["Condition"]["StringEquals"]["kms:ViaService"]) == VIA_SECRETS_MANAGER
        assert statement["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"]


def _can_use_key(cfn: dict, role_id: str, action: str, secret_arn: str) -> bool:
    return any(
        _matches(action, actions(s))
        and any(
            fnmatch.fnmatch(secret_arn, render(p))
            for p in as_list(s["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"])
        )
        for s in _kms_statements(cfn, role_id)
    )


def test_who_may_decrypt_which_secret(variant):
    cfn, stack = variant
    secret_id, _ = only(cfn, "AWS::SecretsManager::Secret")
    functions = functions_by_handler(cfn)
    roles = {handler: role_of(fn) for handler, fn in functions.items()}
    secrets = {
        "client": "${" + secret_id + "}",
        "refresh": SECRET_ARN + f"adsauth/{stack}/advertisers/refresh/adv-1-AbCdEf",
        "access": SECRET_ARN + f"adsauth/{stack}/advertisers/access/adv-1-AbCdEf",
    }
    expected = {
        CONNECT: set(),
        DISPATCHER: set(),
        CALLBACK: {"client", "refresh", "access"},
        # access: to write, and to read the packs' (and a replaced version, by id): Secrets
        # Manager's own grants decide which access-token secrets (test_permissions)
        WORKER: {"client", "refresh", "access"},
    }
    for handler, kinds in expected.items():
        decrypt = {k for k, arn in secrets.items() if _can_use_key(cfn, roles[handler], "kms:Decrypt", arn)}
        assert decrypt == kinds, handler
        write = {k for k, arn in secrets.items() if _can_use_key(cfn, roles[handler], "kms:GenerateDataKey", arn)}
        assert write == kinds - {"client"}, handler  # nobody writes the client secret but ops


def _reader_paths(cfn: dict) -> dict[str, str | None]:
    return {role_id: role["Properties"].get("Path") for role_id, role in resources(cfn, "AWS::IAM::Role").items()}


def test_only_the_callback_and_worker_roles_are_refresh_token_readers(variant):
    cfn, stack = variant
    functions = functions_by_handler(cfn)
    readers = {role_id for role_id, path in _reader_paths(cfn).items() if path}
    assert readers == {role_of(functions[CALLBACK]), role_of(functions[WORKER])}
    for role_id in readers:
        assert _reader_paths(cfn)[role_id] == f"/adsauth/{stack}/refresh-token-readers/"


@pytest.mark.parametrize("which, operators", [("cfn", []), ("domain_cfn", [OPERATOR_ARN])])
def test_client_secret_denies_reading_to_everyone_but_the_readers(which, operators, request):
    cfn = request.getfixturevalue(which)
    secret_id, _ = only(cfn, "AWS::SecretsManager::Secret")
    _, policy = only(cfn, "AWS::SecretsManager::ResourcePolicy")
    assert policy["Properties"]["SecretId"] == {"Ref": secret_id}
    assert policy["DeletionPolicy"] == "RetainExceptOnCreate"  # a secret left behind stays protected
    (statement,) = policy["Properties"]["ResourcePolicy"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == {"AWS": "*"}
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    (operator, values), = statement["Condition"].items()
    assert operator == "StringNotLike"  # a Deny for "everyone but": StringNotLike on PrincipalArn
    (key, patterns), = values.items()
    assert key == "aws:PrincipalArn"
    assert [render(p) for p in patterns] == _readers(VARIANTS[which], operators)


@pytest.mark.parametrize("which, operators", [("cfn", []), ("domain_cfn", [OPERATOR_ARN])])
def test_refresh_token_secrets_get_the_same_readers(which, operators, request):
    """The creators of refresh-token secrets, the callback (a new grant) and the worker (a pack's,
    and an advertiser's own when it leaves a pack), put a resource policy naming
    REFRESH_SECRET_READERS on each one they create: the same readers as the client secret, for
    both. No other function gets the variable."""
    cfn = request.getfixturevalue(which)
    creators = (CALLBACK, WORKER)
    for handler, fn in functions_by_handler(cfn).items():
        env = fn["Properties"]["Environment"]["Variables"]
        if handler in creators:
            assert render(env["REFRESH_SECRET_READERS"]).split(",") == _readers(VARIANTS[which], operators), handler
        else:
            assert "REFRESH_SECRET_READERS" not in env, handler


@pytest.mark.parametrize(
    "principal, reads",
    [
        ("arn:aws:iam::123456789012:role/adsauth/AdsAuth/refresh-token-readers/AdsAuth-ApiCallbackRole-X", True),
        ("arn:aws:iam::123456789012:role/adsauth/AdsAuth/refresh-token-readers/AdsAuth-WorkerRole-Y", True),
        ("arn:aws:iam::123456789012:root", True),  # break glass
        ("arn:aws:iam::123456789012:role/AdsAuth-ApiConnectRole-Z", False),
        ("arn:aws:iam::123456789012:role/AdsAuthExampleConsumer-ConsumerRole-Q", False),
        ("arn:aws:iam::123456789012:role/adsauth/AdsAuthDomain/refresh-token-readers/Other", False),
        ("arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_1", False),
        ("arn:aws:iam::999999999999:role/adsauth/AdsAuth/refresh-token-readers/X", False),
    ],
)
def test_the_deny_spares_exactly_the_readers(cfn, principal, reads):
    _, policy = only(cfn, "AWS::SecretsManager::ResourcePolicy")
    (statement,) = policy["Properties"]["ResourcePolicy"]["Statement"]
    patterns = [
        render(p).replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", "123456789012")
        for p in statement["Condition"]["StringNotLike"]["aws:PrincipalArn"]
    ]
    denied = not any(fnmatch.fnmatchcase(principal, p) for p in patterns)
    assert denied is not reads


def test_state_is_retained_when_the_stack_goes(variant):
    cfn, _ = variant
    for resource_type in (
        "AWS::DynamoDB::Table",
        "AWS::SecretsManager::Secret",
        "AWS::SecretsManager::ResourcePolicy",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
    ):
        for logical_id, resource in resources(cfn, resource_type).items():
            # Retained, except by the rollback of the deploy that created them (a retry must not
            # find them in its way); see tests/infra/test_deploy_safety.py.
            assert resource.get("DeletionPolicy") == "RetainExceptOnCreate", logical_id
            assert resource.get("UpdateReplacePolicy") == "Retain", logical_id
    _, table = only(cfn, "AWS::DynamoDB::Table")
    assert table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
