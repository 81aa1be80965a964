"""What a first ``cdk deploy`` on a real account meets (issue 10, findings 1-5 and 7).

- a new account (concurrency quota 10) can deploy the default configuration: no reservation;
- a failed first deploy cleans up after itself: nothing is ``Retain``, every retained resource is
  ``RetainExceptOnCreate`` (deleted only by the rollback of the deploy that created it);
- the region's API Gateway logging role is never replaced by default (``api_cloudwatch_role``
  ``auto``: set only when the account has none); ``create`` replaces it, ``existing`` leaves it;
- SES gets an address as Source (``SES_FROM_ADDRESS``), never a bare domain;
- the stage is not traced (its segments record the query string); the functions are;
- explicit ``null``s in cdk.json reach the configuration on the app.build path.
"""

from __future__ import annotations

import json

import pytest
from aws_cdk import App

from infra.config import ConfigError
from tests.infra.cfn import as_list, functions_by_handler, only, render, resources, role_of, role_statements

# Everything the stacks keep when they go: state, keys, logs, the account-wide logging role.
RETAINED_TYPES = {
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::SecretsManager::ResourcePolicy",
    "AWS::KMS::Key",
    "AWS::Logs::LogGroup",
}
TEMPLATES = ("cfn", "domain_cfn", "consumer_cfn", "app_cfn")


@pytest.fixture(params=TEMPLATES)
def any_cfn(request) -> dict:
    return request.getfixturevalue(request.param)


def test_nothing_is_retained_through_a_failed_first_deploy(any_cfn):
    for logical_id, resource in any_cfn["Resources"].items():
        assert resource.get("DeletionPolicy") != "Retain", logical_id
        if resource["Type"] in RETAINED_TYPES:
            assert resource.get("DeletionPolicy") == "RetainExceptOnCreate", logical_id
            assert resource.get("UpdateReplacePolicy") == "Retain", logical_id


def test_every_kind_of_retained_resource_is_covered(cfn, domain_cfn):
    present = {r["Type"] for r in cfn["Resources"].values()}
    assert RETAINED_TYPES <= present
    # The stack-created API Gateway logging role (api_cloudwatch_role "create") is kept too:
    # other APIs of the region use it once it is the account's.
    (role,) = [r for r in resources(domain_cfn, "AWS::IAM::Role").values() if _trusts_apigateway(r)]
    assert role["DeletionPolicy"] == "RetainExceptOnCreate"


def test_the_table_can_be_deleted_by_a_rollback_unless_protection_is_chosen(cfn, domain_cfn, app_cfn):
    # CloudFormation cannot delete a deletion-protected table: the rollback of a failed first
    # deploy would fail on it. Protection is a choice made after the first deploy.
    for template, protected in ((cfn, False), (app_cfn, False), (domain_cfn, True)):
        _, table = only(template, "AWS::DynamoDB::Table")
        assert table["Properties"]["DeletionProtectionEnabled"] is protected


def test_the_default_deploys_on_an_account_with_a_quota_of_ten(cfn, app_cfn, consumer_cfn):
    for template in (cfn, app_cfn, consumer_cfn):
        for logical_id, resource in template["Resources"].items():
            assert "ReservedConcurrentExecutions" not in resource.get("Properties", {}), logical_id


def test_an_integer_still_reserves_for_the_callback_only(domain_cfn):
    reserved = {
        handler: fn["Properties"].get("ReservedConcurrentExecutions")
        for handler, fn in functions_by_handler(domain_cfn).items()
    }
    assert sorted(reserved.values(), key=str) == [10, None, None, None]
    assert reserved["adsauth.handlers.callback.handler"] == 10


def _trusts_apigateway(role: dict) -> bool:
    principals = [
        s.get("Principal", {}).get("Service")
        for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    ]
    return "apigateway.amazonaws.com" in principals


def _logging_roles(template: dict) -> dict[str, dict]:
    return {k: r for k, r in resources(template, "AWS::IAM::Role").items() if _trusts_apigateway(r)}


def test_by_default_the_account_logging_role_is_set_only_when_the_account_has_none(cfn, consumer_cfn):
    # "auto": no AWS::ApiGateway::Account (which would replace another team's role); a custom
    # resource sets the stack's role at deploy time only when the account has none.
    assert not resources(cfn, "AWS::ApiGateway::Account")
    ((role_id, role),) = _logging_roles(cfn).items()
    assert role["DeletionPolicy"] == "RetainExceptOnCreate"  # other APIs may log through it
    setting_id, setting = only(cfn, "Custom::ApiGatewayCloudWatchRole")
    assert render(setting["Properties"]["RoleArn"]) == "${" + role_id + ".Arn}"
    _, stage = only(cfn, "AWS::ApiGateway::Stage")
    assert "AccessLogSetting" in stage["Properties"]
    assert setting_id in stage.get("DependsOn", [])
    # Its function may read and update the account's API Gateway settings and pass this one role
    # to API Gateway; nothing else (besides its own log group and X-Ray).
    setter = next(
        fn for fn in resources(cfn, "AWS::Lambda::Function").values()
        if render(setting["Properties"]["ServiceToken"]) == "${" + _logical_id(cfn, fn) + ".Arn}"
    )
    statements = role_statements(cfn)[role_of(setter)]
    granted = sorted((tuple(as_list(s["Action"])), render(s["Resource"])) for s in statements
                     if not any(a.startswith("logs:") for a in as_list(s["Action"])))
    assert granted == [
        (("apigateway:GET", "apigateway:PATCH"), "arn:${AWS::Partition}:apigateway:${AWS::Region}::/account"),
        (("iam:PassRole",), "${" + role_id + ".Arn}"),
        (("xray:PutTelemetryRecords", "xray:PutTraceSegments"), "*"),  # traced like every function
    ]
    (pass_role,) = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "apigateway.amazonaws.com"}}
    assert not resources(consumer_cfn, "Custom::ApiGatewayCloudWatchRole")


def _logical_id(cfn: dict, resource: dict) -> str:
    return next(k for k, r in cfn["Resources"].items() if r is resource)


def test_existing_leaves_the_account_logging_role_alone(app_cfn):
    assert not resources(app_cfn, "AWS::ApiGateway::Account")
    assert not resources(app_cfn, "Custom::ApiGatewayCloudWatchRole")
    assert not _logging_roles(app_cfn)
    # The stage still logs (to the role the account already has).
    _, stage = only(app_cfn, "AWS::ApiGateway::Stage")
    assert "AccessLogSetting" in stage["Properties"]


def test_create_sets_the_account_logging_role_before_the_stage_logs(domain_cfn):
    account_id, account = only(domain_cfn, "AWS::ApiGateway::Account")
    ((role_id, _),) = _logging_roles(domain_cfn).items()
    assert render(account["Properties"]["CloudWatchRoleArn"]) == "${" + role_id + ".Arn}"
    assert not resources(domain_cfn, "Custom::ApiGatewayCloudWatchRole")
    _, stage = only(domain_cfn, "AWS::ApiGateway::Stage")
    assert "AccessLogSetting" in stage["Properties"]
    assert account_id in stage.get("DependsOn", [])


def test_the_stage_is_not_traced_and_every_function_is(any_cfn):
    for logical_id, stage in resources(any_cfn, "AWS::ApiGateway::Stage").items():
        assert stage["Properties"].get("TracingEnabled") is not True, logical_id
    functions = resources(any_cfn, "AWS::Lambda::Function")
    assert functions
    for logical_id, fn in functions.items():
        assert fn["Properties"].get("TracingConfig") == {"Mode": "Active"}, logical_id


def test_ses_gets_an_address_never_a_domain(cfn, domain_cfn, app_cfn):
    expected = {"cfn": None, "domain_cfn": "ops@example.com", "app_cfn": "adsauth@mail.example.com"}
    for name, template in (("cfn", cfn), ("domain_cfn", domain_cfn), ("app_cfn", app_cfn)):
        outputs = {key: render(o["Value"]) for key, o in template["Outputs"].items()}
        assert "SesSender" not in outputs
        assert outputs.get("SesFromAddress") == expected[name]
        for fn in resources(template, "AWS::Lambda::Function").values():
            env = fn["Properties"].get("Environment", {}).get("Variables", {})
            assert "SES_SENDER" not in env
            if "TABLE_NAME" in env:
                assert env.get("SES_FROM_ADDRESS") == expected[name]


def test_app_build_sees_the_nulls_of_cdk_json(monkeypatch):
    """The path ops use: app.py reads the block as the CLI passes it (CDK_CONTEXT_JSON), where a
    null survives; through App.node.try_get_context jsii would drop it and take the default."""
    import app as cdk_app
    from tests.infra.conftest import REPO_ROOT

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context["adsauth"] = {**context["adsauth"], "stage_name": None, "callback_reserved_concurrency": None,
                          "operator_name": "Northwind Media"}  # in place of the placeholder, as ops do
    monkeypatch.delenv("CONTEXT_OVERFLOW_LOCATION_ENV", raising=False)
    monkeypatch.setenv("CDK_CONTEXT_JSON", json.dumps(context))
    with pytest.raises(ConfigError) as caught:
        cdk_app.build(App(context=context))
    assert caught.value.problems == [
        'stage_name must match ^[A-Za-z0-9_]+$; got null (null is not allowed here; leave the '
        'key out for the default, "prod")'
    ]


@pytest.mark.parametrize(
    "version, warned", [("v20.20.2", True), ("v18.19.0", True), ("v22.0.0", False), ("v24.3.1", False)]
)
def test_make_synth_warns_on_a_node_older_than_22(tmp_path, version, warned):
    """``make synth`` runs ``node-version`` first: one line on stderr, never a failure."""
    import shutil
    import subprocess

    from tests.infra.conftest import REPO_ROOT

    (tmp_path / "node").write_text(f"#!/bin/sh\necho {version}\n")
    (tmp_path / "node").chmod(0o755)
    result = subprocess.run(
        [shutil.which("make"), "-s", "-C", str(REPO_ROOT), "node-version"],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},  # the fake node first
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    if warned:
        assert result.stderr == (
            f"warning: Node.js {version} is older than 22, which the CDK CLI no longer supports; "
            "synth still runs, but upgrade to Node.js 22+\n"
        )
    else:
        assert result.stderr == ""
    assert result.stdout == ""
    dry_run = subprocess.run(
        [shutil.which("make"), "-n", "-C", str(REPO_ROOT), "synth"], capture_output=True, text=True
    )
    assert "node --version" in dry_run.stdout  # synth depends on the check
