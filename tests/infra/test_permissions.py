"""Who may touch which secret: the callback role (exchange) and the refresh worker read the client
secret and create, write and delete advertiser secrets, each as narrowly as it needs; only the
worker touches the packs' secrets (``adsauth.packs``: the callback is explicitly denied them), and
of access tokens it reads the packs' only; the connect and dispatcher roles have no Secrets
Manager action at all; downstream (the example consumer) reads access tokens only. Only the
refresh worker may send email, and only from ``ses_sender``."""

from __future__ import annotations

import fnmatch
import json

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


def _names(statement: dict, action: str, resource: str) -> bool:
    return any(fnmatch.fnmatch(action.lower(), a.lower()) for a in actions(statement)) and any(
        fnmatch.fnmatch(resource, render(r)) for r in as_list(statement["Resource"])
    )


def _roles_allowed(cfn: dict, action: str, resource: str, *, unconditionally: bool = False) -> set[str]:
    """Roles with an Allow of ``action`` on ``resource`` (under any condition, or with
    ``unconditionally`` under none) and no unconditional Deny of it: an explicit Deny wins."""
    found = set()
    for role_id, statements in role_statements(cfn).items():
        named = [s for s in statements if _names(s, action, resource)]
        if any(s["Effect"] == "Deny" and "Condition" not in s for s in named):
            continue
        if any(s["Effect"] == "Allow" and not (unconditionally and "Condition" in s) for s in named):
            found.add(role_id)
    return found


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
    """An advertiser's own secrets (``refresh/<id>``, ``access/<id>``) and a pack's
    (``refresh/packs/<P>``, ``access/packs/<P>``). Both the callback (a new grant) and the worker
    (an advertiser joining or leaving a pack, a pack's own secrets) create and delete; only the
    worker touches a pack. A read "by id" is allowed only with a VersionId (undoing a write): a
    current token is read by the worker alone, an advertiser's own access token by nobody."""
    functions = functions_by_handler(cfn)
    callback, worker = role_of(functions[CALLBACK]), role_of(functions[WORKER])
    both = {callback, worker}
    expected = {
        ("refresh", "CreateSecret"): both,
        ("refresh", "TagResource"): both,  # CreateSecret with tags needs it
        ("refresh", "GetSecretValue"): both,  # the callback only by VersionId (see below)
        ("refresh", "PutSecretValue"): both,
        ("refresh", "DescribeSecret"): both,
        ("refresh", "UpdateSecret"): set(),
        # the callback undoes a grant that lost a race against a revoke; the worker deletes a
        # joiner's own secrets once its tokens are in the pack
        ("refresh", "DeleteSecret"): both,
        ("access", "CreateSecret"): both,  # the worker: a leaver's own secret
        ("access", "GetSecretValue"): both,  # both only by VersionId (see below)
        ("access", "PutSecretValue"): both,
        ("access", "DescribeSecret"): both,
        ("access", "UpdateSecret"): set(),
        ("access", "DeleteSecret"): both,
    }
    for kind in ("refresh", "access"):  # a pack: the worker's alone, the callback denied
        expected.update({
            (f"{kind}/packs", action): set() if action == "UpdateSecret" else {worker}
            for (k, action) in list(expected) if k == kind
        })
    current_reads = {"refresh": {worker}, "access": set(), "refresh/packs": {worker}, "access/packs": {worker}}
    for (kind, action), roles in expected.items():
        assert _roles_allowed(cfn, f"secretsmanager:{action}", _secret(kind)) == roles, (kind, action)
    for kind, roles in current_reads.items():
        assert _roles_allowed(cfn, "secretsmanager:GetSecretValue", _secret(kind), unconditionally=True) == roles, kind


def _secret(kind: str) -> str:
    """A deployed secret's ARN: ``kind`` "refresh", "access" (advertiser adv-1's own) or
    "refresh/packs", "access/packs" (pack p1's)."""
    name = "p1" if kind.endswith("/packs") else "adv-1"
    return PREFIX + f"adsauth/AdsAuth/advertisers/{kind}/{name}-AbCdEf"


def _callback_advertiser_secret_statements(cfn: dict) -> list[dict]:
    callback_role = role_of(functions_by_handler(cfn)[CALLBACK])
    return [
        s
        for s in role_statements(cfn)[callback_role]
        if _grants(s, "secretsmanager:*") and {render(r) for r in as_list(s["Resource"])} & ADVERTISER_ARNS
    ]


def test_callback_reads_an_advertiser_secret_only_by_version_id(cfn):
    """Its one read (undoing a grant that lost its commit) names the version it replaced; a read
    of a current token, any advertiser's, is not allowed (tests/iam proves it by simulation)."""
    reads = [s for s in _callback_advertiser_secret_statements(cfn) if _grants(s, "secretsmanager:GetSecretValue")]
    assert [(actions(s), s.get("Condition")) for s in reads] == [
        (["secretsmanager:GetSecretValue"], {"Null": {"secretsmanager:VersionId": "false"}})
    ]


def test_callback_advertiser_secret_grant_is_exactly_scoped(cfn):
    by_resources: dict[tuple, set] = {}
    for s in _callback_advertiser_secret_statements(cfn):
        by_resources.setdefault(tuple(sorted(render(r) for r in as_list(s["Resource"]))), set()).update(actions(s))
    assert by_resources == {
        tuple(sorted(ADVERTISER_ARNS)): {
            f"secretsmanager:{a}"
            for a in ("CreateSecret", "TagResource", "DescribeSecret", "PutSecretValue", "DeleteSecret", "GetSecretValue")
        },
        # the readers-only resource policy on each refresh-token secret it creates
        (PREFIX + "adsauth/AdsAuth/advertisers/refresh/*",): {"secretsmanager:PutResourcePolicy"},
    }


def test_only_the_creators_of_refresh_token_secrets_may_set_a_policy_and_nobody_deletes_one(cfn):
    """The readers-only policy goes on every refresh-token secret, by whoever creates it: the
    callback (a new grant), the worker (a pack's, a leaver's own); access tokens carry none."""
    functions = functions_by_handler(cfn)
    callback, worker = role_of(functions[CALLBACK]), role_of(functions[WORKER])
    for kind, roles in (
        ("refresh", {callback, worker}),
        ("access", set()),
        ("refresh/packs", {worker}),
        ("access/packs", set()),
    ):
        assert _roles_allowed(cfn, "secretsmanager:PutResourcePolicy", _secret(kind)) == roles, kind
        assert _roles_allowed(cfn, "secretsmanager:DeleteResourcePolicy", _secret(kind)) == set(), kind


def test_worker_secret_grants_are_exactly_scoped(cfn):
    """(effect, resource, condition) → the actions of every Secrets Manager statement of the
    worker: the callback's write set (advertisers move in and out of packs) plus unconditional
    reads of refresh tokens and of the packs' access tokens, never an advertiser's own."""
    worker_role = role_of(functions_by_handler(cfn)[WORKER])
    found: dict[tuple, set[str]] = {}
    for s in role_statements(cfn)[worker_role]:
        if any(a.lower().startswith("secretsmanager:") for a in actions(s)):
            for resource in as_list(s["Resource"]):
                key = (s["Effect"], render(resource), json.dumps(s.get("Condition"), sort_keys=True))
                found.setdefault(key, set()).update(actions(s))
    secret_id, _ = only(cfn, "AWS::SecretsManager::Secret")
    refresh = PREFIX + "adsauth/AdsAuth/advertisers/refresh/*"
    access = PREFIX + "adsauth/AdsAuth/advertisers/access/*"
    writes = {
        f"secretsmanager:{a}" for a in ("CreateSecret", "TagResource", "DescribeSecret", "PutSecretValue", "DeleteSecret")
    }
    by_version_id = json.dumps({"Null": {"secretsmanager:VersionId": "false"}})
    assert found == {
        ("Allow", "${" + secret_id + "}", "null"): {"secretsmanager:GetSecretValue"},
        ("Allow", refresh, "null"): writes | {"secretsmanager:GetSecretValue", "secretsmanager:PutResourcePolicy"},
        ("Allow", access, "null"): writes,
        ("Allow", refresh, by_version_id): {"secretsmanager:GetSecretValue"},
        # undo of a leaver's own secrets: the version it replaced, by id
        ("Allow", access, by_version_id): {"secretsmanager:GetSecretValue"},
        # the pack's members not refreshed in a job keep their access tokens
        ("Allow", PREFIX + "adsauth/AdsAuth/advertisers/access/packs/*", "null"): {"secretsmanager:GetSecretValue"},
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
    assert not [s for s in statements if _grants(s, "ses:*")]
    # besides the table and the queues: events:PutEvents (on the stack's bus, see test_events)
    events = [s for s in statements if _grants(s, "events:*")]
    assert [actions(s) for s in events] == [["events:PutEvents"]]


def _queue_ids(cfn: dict) -> dict[str, str]:
    queues = resources(cfn, "AWS::SQS::Queue")
    (queue_id,) = [q for q, props in queues.items() if "RedrivePolicy" in props["Properties"]]
    (dlq_id,) = [render(queues[queue_id]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])[2:-6]]
    return {"queue": queue_id, "dlq": dlq_id}


def test_connect_role_has_no_secretsmanager_action(cfn):
    connect_role = role_of(functions_by_handler(cfn)[CONNECT])
    assert not [s for s in role_statements(cfn)[connect_role] if _grants(s, "secretsmanager:*")]


def test_no_secretsmanager_statement_on_every_resource(cfn):
    """No grant of every secret, nor of every Secrets Manager action; a Deny may name them all
    (the callback's on the packs: test_the_callback_is_denied_every_pack_secret)."""
    for statement in all_statements(cfn):
        if _grants(statement, "secretsmanager:*"):
            assert "*" not in as_list(statement["Resource"]), statement
            assert "secretsmanager:*" not in actions(statement), statement
        assert "*" not in actions(statement), statement


@pytest.mark.parametrize("which", ["cfn", "domain_cfn"])  # packed and per_advertiser: the same
def test_the_callback_is_denied_every_pack_secret(which, request):
    """Only the refresher writes a pack: the callback's grants on ``refresh/*`` and ``access/*``
    (an advertiser's own secrets) would match the packs', so one Deny of every Secrets Manager
    action on exactly the two pack patterns, whatever the token layout, and no Allow of the
    callback names a pack. No other role carries a Deny."""
    cfn = request.getfixturevalue(which)
    stack = "AdsAuthDomain" if which == "domain_cfn" else "AdsAuth"
    callback = role_of(functions_by_handler(cfn)[CALLBACK])
    denies = {
        role_id: found
        for role_id, statements in role_statements(cfn).items()
        if (found := [s for s in statements if s["Effect"] == "Deny"])
    }
    assert list(denies) == [callback] and len(denies[callback]) == 1, denies
    (deny,) = denies[callback]
    assert actions(deny) == ["secretsmanager:*"] and "Condition" not in deny
    assert sorted(render(r) for r in as_list(deny["Resource"])) == [
        PREFIX + f"adsauth/{stack}/advertisers/access/packs/*",
        PREFIX + f"adsauth/{stack}/advertisers/refresh/packs/*",
    ]
    for s in role_statements(cfn)[callback]:
        if s["Effect"] == "Allow":
            named = [render(r) for r in as_list(s["Resource"])]
            secrets = s.get("Condition", {}).get("StringLike", {}).get("kms:EncryptionContext:SecretARN", [])
            named += [render(r) for r in as_list(secrets)]
            assert not [r for r in named if "/packs/" in r], s


def test_function_roles_carry_no_managed_policy(cfn):
    for fn in functions_by_handler(cfn).values():
        role = cfn["Resources"][role_of(fn)]
        assert not role["Properties"].get("ManagedPolicyArns")


def _email_statements(cfn: dict) -> dict[str, list[dict]]:
    """role → its statements granting any SES action."""
    found = {
        role_id: [s for s in statements if _grants(s, "ses:*")]
        for role_id, statements in role_statements(cfn).items()
    }
    return {role_id: statements for role_id, statements in found.items() if statements}


SES_IDENTITY = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/"


def test_without_a_sender_nothing_may_send_email(cfn, consumer_cfn):
    for template in (cfn, consumer_cfn):
        assert not [s for s in all_statements(template) if _grants(s, "ses:*")]


def test_the_worker_may_send_email_only_from_the_sender_address(domain_cfn):
    """ses_sender ops@example.com: its identity is the address or its domain, whichever ops
    verified; either way From must be exactly the address."""
    worker = role_of(functions_by_handler(domain_cfn)[WORKER])
    ((role_id, (statement,)),) = _email_statements(domain_cfn).items()
    assert role_id == worker
    assert actions(statement) == ["ses:SendEmail"]
    assert sorted(render(r) for r in as_list(statement["Resource"])) == [
        SES_IDENTITY + "example.com",
        SES_IDENTITY + "ops@example.com",
    ]
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": "ops@example.com"}}


def test_a_domain_sender_lets_the_worker_send_from_its_from_address_only(app_cfn):
    """ses_sender example.com, ses_from_address adsauth@mail.example.com (through cdk.json and
    app.py): the identities that may authorize that address, and From exactly that address."""
    worker = role_of(functions_by_handler(app_cfn)[WORKER])
    ((role_id, (statement,)),) = _email_statements(app_cfn).items()
    assert role_id == worker
    assert actions(statement) == ["ses:SendEmail"]
    assert sorted(render(r) for r in as_list(statement["Resource"])) == [
        SES_IDENTITY + "adsauth@mail.example.com",
        SES_IDENTITY + "example.com",
        SES_IDENTITY + "mail.example.com",
    ]
    assert statement["Condition"] == {
        "StringEquals": {"ses:FromAddress": "adsauth@mail.example.com"}
    }


# --- the table: actions by the partition keys each function touches (dynamodb:LeadingKeys) ------
ITEM_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:Query",
}


def _table_statements(cfn: dict, handler: str) -> list[dict]:
    role = role_of(functions_by_handler(cfn)[handler])
    return [s for s in role_statements(cfn)[role] if _grants(s, "dynamodb:*")]


def _roles_allowed_on_key(cfn: dict, action: str, partition_key: str) -> set[str]:
    """Roles with a statement granting ``action`` on the table for an item of ``partition_key``
    (a statement without a LeadingKeys condition grants every key)."""
    table_id, _ = only(cfn, "AWS::DynamoDB::Table")
    found = set()
    for role_id, statements in role_statements(cfn).items():
        for s in statements:
            if not _grants(s, action) or "${" + table_id + ".Arn}" not in [render(r) for r in as_list(s["Resource"])]:
                continue
            keys = s.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
            if keys is None or any(fnmatch.fnmatchcase(partition_key, k) for k in keys):
                found.add(role_id)
    return found


def test_every_table_statement_of_a_function_names_the_keys_it_touches(cfn):
    """No scan, no DescribeTable or stream reads, no index wildcard; every statement on the table
    carries a dynamodb:LeadingKeys condition; an index is only queried, by its own ARN (what IAM
    compares LeadingKeys with for an index query is not documented: infra/table_grants.py)."""
    table_id, _ = only(cfn, "AWS::DynamoDB::Table")
    indexes = {"${" + table_id + ".Arn}/index/" + name for name in ("byProfile", "byExpiry", "byKind")}
    for handler in (CONNECT, CALLBACK, DISPATCHER, WORKER):
        statements = _table_statements(cfn, handler)
        assert statements, handler
        for s in statements:
            assert set(actions(s)) <= ITEM_ACTIONS, (handler, actions(s))
            assert {render(r) for r in as_list(s["Resource"])} <= {"${" + table_id + ".Arn}", *indexes}, handler
            if all(render(r) in indexes for r in as_list(s["Resource"])):
                assert actions(s) == ["dynamodb:Query"] and "Condition" not in s, (handler, s)
                continue
            assert list(s["Condition"]) == ["ForAllValues:StringLike"], (handler, s.get("Condition"))
            assert list(s["Condition"]["ForAllValues:StringLike"]) == ["dynamodb:LeadingKeys"], handler


def test_only_the_worker_may_pause_every_refresh_and_only_the_dispatcher_takes_its_lease(cfn):
    functions = functions_by_handler(cfn)
    worker, dispatcher = role_of(functions[WORKER]), role_of(functions[DISPATCHER])
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"):
        assert _roles_allowed_on_key(cfn, action, "PLATFORM#lwa") == ({worker} if action == "dynamodb:PutItem" else set()), action
        assert _roles_allowed_on_key(cfn, action, "PLATFORM#dispatch") == (
            {dispatcher} if action in ("dynamodb:PutItem", "dynamodb:DeleteItem") else set()
        ), action


def test_only_the_refresher_touches_the_pack_items(cfn):
    """A pack's item (its job's lease, member count) and the lobby (``PACK#lobby``, advertisers
    waiting to join): the dispatcher reads and empties the lobby, the worker leases, updates and
    deletes packs; the dispatcher lists the packs (byKind: an index query carries no key
    condition, see the test above). Only the worker batch-reads advertisers (where each member of
    a pack keeps its tokens)."""
    functions = functions_by_handler(cfn)
    worker, dispatcher = role_of(functions[WORKER]), role_of(functions[DISPATCHER])
    expected = {
        "dynamodb:GetItem": {dispatcher},
        "dynamodb:PutItem": set(),
        "dynamodb:UpdateItem": {dispatcher, worker},
        "dynamodb:DeleteItem": {worker},
        "dynamodb:BatchWriteItem": set(),
        "dynamodb:BatchGetItem": set(),
        "dynamodb:Query": set(),
    }
    for action, roles in expected.items():
        for key in ("PACK#lobby", "PACK#p1"):
            assert _roles_allowed_on_key(cfn, action, key) == roles, (action, key)
    assert _roles_allowed_on_key(cfn, "dynamodb:BatchGetItem", "ADV#adv-1") == {worker}
    table_id, _ = only(cfn, "AWS::DynamoDB::Table")
    by_kind = "${" + table_id + ".Arn}/index/byKind"
    assert dispatcher in _roles_allowed(cfn, "dynamodb:Query", by_kind)


def test_the_connect_function_writes_only_its_state_and_its_invitation(cfn):
    connect = role_of(functions_by_handler(cfn)[CONNECT])
    for action, key in (
        ("dynamodb:PutItem", "STATE#abc"),
        ("dynamodb:UpdateItem", "INVITE#abc"),
        ("dynamodb:ConditionCheckItem", "ADV#adv-1"),
    ):
        assert connect in _roles_allowed_on_key(cfn, action, key), (action, key)
    for action, key in (
        ("dynamodb:PutItem", "ADV#adv-1"),
        ("dynamodb:UpdateItem", "ADV#adv-1"),
        ("dynamodb:UpdateItem", "STATE#abc"),
        ("dynamodb:DeleteItem", "INVITE#abc"),
        ("dynamodb:GetItem", "STATE#abc"),
        ("dynamodb:BatchWriteItem", "STATE#abc"),
    ):
        assert connect not in _roles_allowed_on_key(cfn, action, key), (action, key)


def test_functions_publish_only_adsauth_events(cfn):
    """events:PutEvents only with source adsauth: no function can pose as another system."""
    publishers = 0
    for statement in all_statements(cfn):
        if _grants(statement, "events:PutEvents"):
            publishers += 1
            assert statement["Condition"] == {"ForAllValues:StringEquals": {"events:source": ["adsauth"]}}, statement
    assert publishers == 3  # callback, dispatcher, worker
