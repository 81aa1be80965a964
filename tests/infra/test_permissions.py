"""Who may touch which secret: the callback role (exchange) and the refresh worker read the client
secret and write advertiser secrets, each as narrowly as it needs; the connect and dispatcher roles
have no Secrets Manager action at all; downstream (the example consumer) reads access tokens only."""

from __future__ import annotations

import fnmatch

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

CONNECT = "adsauth.handlers.connect.handler"
CALLBACK = "adsauth.handlers.callback.handler"
DISPATCHER = "adsauth.handlers.dispatcher.handler"
WORKER = "adsauth.handlers.worker.handler"
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


def test_only_the_callback_and_worker_roles_read_the_client_secret(cfn):
    secret_id, _ = only(cfn, "AWS::SecretsManager::Secret")
    functions = functions_by_handler(cfn)
    readers = {role_of(functions[CALLBACK]), role_of(functions[WORKER])}
    assert _roles_allowed(cfn, "secretsmanager:GetSecretValue", "${" + secret_id + "}") == readers
    for role in readers:
        client_secret_statements = [
            s
            for s in role_statements(cfn)[role]
            if "${" + secret_id + "}" in [render(r) for r in as_list(s["Resource"])]
        ]
        assert [actions(s) for s in client_secret_statements] == [["secretsmanager:GetSecretValue"]]


def test_who_may_do_what_with_advertiser_secrets(cfn):
    functions = functions_by_handler(cfn)
    callback, worker = role_of(functions[CALLBACK]), role_of(functions[WORKER])
    expected = {
        ("refresh", "CreateSecret"): {callback},
        ("refresh", "GetSecretValue"): {callback, worker},
        ("refresh", "PutSecretValue"): {callback, worker},
        ("refresh", "UpdateSecret"): {callback},
        ("refresh", "DeleteSecret"): set(),
        ("access", "CreateSecret"): {callback, worker},
        ("access", "GetSecretValue"): {callback},  # the worker writes access tokens, never reads
        ("access", "PutSecretValue"): {callback, worker},
        ("access", "UpdateSecret"): {callback},
        ("access", "DeleteSecret"): set(),
    }
    for (kind, action), roles in expected.items():
        arn = PREFIX + f"adsauth/AdsAuth/advertisers/{kind}/adv-1-AbCdEf"
        assert _roles_allowed(cfn, f"secretsmanager:{action}", arn) == roles, (kind, action)


def test_callback_advertiser_secret_grant_is_exactly_scoped(cfn):
    callback_role = role_of(functions_by_handler(cfn)[CALLBACK])
    statements = [
        s
        for s in role_statements(cfn)[callback_role]
        if _grants(s, "secretsmanager:*") and {render(r) for r in as_list(s["Resource"])} & ADVERTISER_ARNS
    ]
    by_resources = {
        tuple(sorted(render(r) for r in as_list(s["Resource"]))): sorted(actions(s)) for s in statements
    }
    assert by_resources == {
        tuple(sorted(ADVERTISER_ARNS)): sorted(
            f"secretsmanager:{a}"
            for a in (
                "CreateSecret",
                "PutSecretValue",
                "GetSecretValue",
                "DescribeSecret",
                "TagResource",
                "UpdateSecret",
            )
        ),
        # the readers-only resource policy on each refresh-token secret it creates
        (PREFIX + "adsauth/AdsAuth/advertisers/refresh/*",): ["secretsmanager:PutResourcePolicy"],
    }


def test_only_the_callback_may_set_a_secret_policy_and_nobody_deletes_one(cfn):
    callback = role_of(functions_by_handler(cfn)[CALLBACK])
    for kind, roles in (("refresh", {callback}), ("access", set())):
        arn = PREFIX + f"adsauth/AdsAuth/advertisers/{kind}/adv-1-AbCdEf"
        assert _roles_allowed(cfn, "secretsmanager:PutResourcePolicy", arn) == roles, kind
        assert _roles_allowed(cfn, "secretsmanager:DeleteResourcePolicy", arn) == set(), kind


def test_worker_secret_grants_are_exactly_scoped(cfn):
    worker_role = role_of(functions_by_handler(cfn)[WORKER])
    by_resource = {
        render(resource): sorted(actions(s))
        for s in role_statements(cfn)[worker_role]
        if _grants(s, "secretsmanager:*")
        for resource in as_list(s["Resource"])
    }
    secret_id, _ = only(cfn, "AWS::SecretsManager::Secret")
    assert by_resource == {
        "${" + secret_id + "}": ["secretsmanager:GetSecretValue"],
        PREFIX + "adsauth/AdsAuth/advertisers/refresh/*": [
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
        ],
        PREFIX + "adsauth/AdsAuth/advertisers/access/*": [
            "secretsmanager:CreateSecret",
            "secretsmanager:DescribeSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:TagResource",  # CreateSecret with tags needs it
        ],
    }


def test_worker_publishes_alerts_and_consumes_the_queue(cfn):
    worker_role = role_of(functions_by_handler(cfn)[WORKER])
    topic_id, _ = only(cfn, "AWS::SNS::Topic")
    queue_id = _queue_ids(cfn)["queue"]
    assert worker_role in _roles_allowed(cfn, "sns:Publish", "${" + topic_id + "}")
    for action in ("ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility"):
        assert _roles_allowed(cfn, f"sqs:{action}", "${" + queue_id + ".Arn}") == {worker_role}


def test_dispatcher_sends_to_the_queue_and_touches_no_secret(cfn):
    dispatcher_role = role_of(functions_by_handler(cfn)[DISPATCHER])
    queue_id = _queue_ids(cfn)["queue"]
    assert _roles_allowed(cfn, "sqs:SendMessage", "${" + queue_id + ".Arn}") == {dispatcher_role}
    statements = role_statements(cfn)[dispatcher_role]
    assert not [s for s in statements if _grants(s, "secretsmanager:*")]
    assert not [s for s in statements if _grants(s, "sns:*")]


def _queue_ids(cfn: dict) -> dict[str, str]:
    queues = resources(cfn, "AWS::SQS::Queue")
    (queue_id,) = [q for q, props in queues.items() if "RedrivePolicy" in props["Properties"]]
    (dlq_id,) = [render(queues[queue_id]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])[2:-6]]
    return {"queue": queue_id, "dlq": dlq_id}


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
