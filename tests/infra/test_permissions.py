"""Who may touch which secret: only the callback role reads the client secret and writes
advertiser secrets; the connect role has no Secrets Manager action at all."""

from __future__ import annotations

import fnmatch

from tests.infra.cfn import (
    actions,
    all_statements,
    as_list,
    functions_by_handler,
    only,
    render,
    role_of,
    role_statements,
)

CONNECT = "adsauth.handlers.connect.handler"
CALLBACK = "adsauth.handlers.callback.handler"
PREFIX = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
ADVERTISER_ARNS = {
    PREFIX + "adsauth/AdsAuth/advertisers/refresh/*",
    PREFIX + "adsauth/AdsAuth/advertisers/access/*",
}


def _grants(statement: dict, pattern: str) -> bool:
    return statement["Effect"] == "Allow" and any(
        fnmatch.fnmatch(action.lower(), pattern.lower()) for action in actions(statement)
    )


def _roles_allowed(cfn: dict, action: str, resource: str) -> set[str]:
    return {
        role_id
        for role_id, statements in role_statements(cfn).items()
        for statement in statements
        if _grants(statement, action)
        and any(fnmatch.fnmatch(resource, render(r)) for r in as_list(statement["Resource"]))
    }


def test_only_the_callback_role_reads_the_client_secret(cfn):
    secret_id, _ = only(cfn, "AWS::SecretsManager::Secret")
    callback_role = role_of(functions_by_handler(cfn)[CALLBACK])
    assert _roles_allowed(cfn, "secretsmanager:GetSecretValue", "${" + secret_id + "}") == {
        callback_role
    }
    client_secret_statements = [
        s
        for s in role_statements(cfn)[callback_role]
        if "${" + secret_id + "}" in [render(r) for r in as_list(s["Resource"])]
    ]
    assert [actions(s) for s in client_secret_statements] == [["secretsmanager:GetSecretValue"]]


def test_only_the_callback_role_writes_advertiser_secrets(cfn):
    callback_role = role_of(functions_by_handler(cfn)[CALLBACK])
    for kind in ("refresh", "access"):
        arn = PREFIX + f"adsauth/AdsAuth/advertisers/{kind}/adv-1-AbCdEf"
        for action in ("CreateSecret", "PutSecretValue", "GetSecretValue", "UpdateSecret"):
            assert _roles_allowed(cfn, f"secretsmanager:{action}", arn) == {callback_role}


def test_callback_advertiser_secret_grant_is_exactly_scoped(cfn):
    callback_role = role_of(functions_by_handler(cfn)[CALLBACK])
    statements = [
        s
        for s in role_statements(cfn)[callback_role]
        if {render(r) for r in as_list(s["Resource"])} & ADVERTISER_ARNS
    ]
    assert len(statements) == 1
    (statement,) = statements
    assert {render(r) for r in as_list(statement["Resource"])} == ADVERTISER_ARNS
    assert sorted(actions(statement)) == sorted(
        f"secretsmanager:{a}"
        for a in (
            "CreateSecret",
            "PutSecretValue",
            "GetSecretValue",
            "DescribeSecret",
            "TagResource",
            "UpdateSecret",
        )
    )


def test_connect_role_has_no_secretsmanager_action(cfn):
    connect_role = role_of(functions_by_handler(cfn)[CONNECT])
    assert not [s for s in role_statements(cfn)[connect_role] if _grants(s, "secretsmanager:*")]


def test_no_secretsmanager_statement_on_every_resource(cfn):
    for statement in all_statements(cfn):
        if _grants(statement, "secretsmanager:*"):
            assert "*" not in as_list(statement["Resource"]), statement
        assert "secretsmanager:*" not in actions(statement), statement
        assert "*" not in actions(statement), statement


def test_function_roles_carry_no_managed_policy(cfn):
    for fn in functions_by_handler(cfn).values():
        role = cfn["Resources"][role_of(fn)]
        assert not role["Properties"].get("ManagedPolicyArns")


def test_no_ses_permission_in_this_issue(cfn, domain_cfn):
    for template in (cfn, domain_cfn):
        assert not [s for s in all_statements(template) if _grants(s, "ses:*")]
