"""Alarms, the alert topic and the dashboard: every alarm notifies the topic, is named after its
runbook entry, and watches a metric something actually emits."""

from __future__ import annotations

import json
import re

import pytest

from infra.bundling import LAMBDAS_DIR
from infra.constants import (
    GRANT_EXPIRED_METRIC,
    GRANT_EXPIRING_DAYS,
    GRANTS_EXPIRING_SOON_METRIC,
    INVALID_CLIENT_METRIC,
    METRICS_NAMESPACE,
    NEEDS_REAUTH_METRIC,
    OLDEST_TOKEN_AGE_METRIC,
    ONBOARDING_METRICS,
    REFRESH_DISPATCHED_METRIC,
    REFRESH_FAILED_METRIC,
    REFRESH_OK_METRIC,
    REFRESH_ROTATED_METRIC,
)
from infra.monitoring import ALARM_SLUGS
from tests.infra.cfn import functions_by_handler, only, render, resources
from tests.infra.conftest import REPO_ROOT

RUNBOOK = "docs/runbook.md"
RUNBOOK_HEADING = "# Operating adsauth (runbook)"

DISPATCHER = "adsauth.handlers.dispatcher.handler"
VARIANTS = {"cfn": "AdsAuth", "domain_cfn": "AdsAuthDomain"}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request):
    return request.getfixturevalue(request.param), VARIANTS[request.param]


def _alarms(cfn: dict) -> dict[str, dict]:
    """slug → alarm properties (alarm names are ``<stack>-<slug>``)."""
    return {
        a["Properties"]["AlarmName"].split("-", 1)[1]: a["Properties"]
        for a in resources(cfn, "AWS::CloudWatch::Alarm").values()
    }


def _function_id(cfn: dict, handler: str) -> str:
    return next(k for k, fn in resources(cfn, "AWS::Lambda::Function").items() if fn["Properties"]["Handler"] == handler)


def test_every_alarm_is_named_after_its_runbook_slug_and_notifies_the_topic(variant):
    cfn, stack = variant
    topic_id, _ = only(cfn, "AWS::SNS::Topic")
    alarms = _alarms(cfn)
    assert sorted(alarms) == sorted(ALARM_SLUGS)
    for slug, props in alarms.items():
        assert props["AlarmName"] == f"{stack}-{slug}"
        assert props["AlarmActions"] == [{"Ref": topic_id}]
        assert props["OKActions"] == [{"Ref": topic_id}]  # and when it recovers
        assert props["TreatMissingData"] == "notBreaching"
        assert f"entry {slug}." in props["AlarmDescription"]
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_each_alarm_watches_what_its_runbook_entry_says(cfn):
    alarms = _alarms(cfn)
    queues = resources(cfn, "AWS::SQS::Queue")
    (queue_id,) = [q for q, p in queues.items() if "RedrivePolicy" in p["Properties"]]
    refresh_dlq = queues[queue_id]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    _, invoke_config = only(cfn, "AWS::Lambda::EventInvokeConfig")
    dispatcher_dlq = invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    api_id, _ = only(cfn, "AWS::ApiGateway::RestApi")
    stage_id, stage = only(cfn, "AWS::ApiGateway::Stage")

    def watched(slug):
        props = alarms[slug]
        dimensions = {d["Name"]: render(d["Value"]) for d in props["Dimensions"]}
        return props["Namespace"], props["MetricName"], props["Statistic"], props["Period"], dimensions, props["Threshold"]

    powertools = {"service": "adsauth"}
    assert watched("refresh-failing") == ("adsauth", REFRESH_FAILED_METRIC, "Sum", 900, powertools, 5)
    assert watched("refresh-dlq-not-empty") == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 60, {"QueueName": "${" + refresh_dlq + ".QueueName}"}, 1
    )
    assert watched("dispatcher-dlq-not-empty") == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 60, {"QueueName": "${" + dispatcher_dlq + ".QueueName}"}, 1
    )
    assert watched("dispatcher-failing") == (
        "AWS/Lambda", "Errors", "Sum", 300, {"FunctionName": "${" + _function_id(cfn, DISPATCHER) + "}"}, 1
    )
    assert (alarms["dispatcher-failing"]["EvaluationPeriods"], alarms["dispatcher-failing"]["DatapointsToAlarm"]) == (2, 2)
    assert watched("lwa-rejects-client") == ("adsauth", INVALID_CLIENT_METRIC, "Sum", 300, powertools, 1)
    namespace, metric, statistic, period, dimensions, threshold = watched("api-5xx")
    assert (namespace, metric, statistic, period, threshold) == ("AWS/ApiGateway", "5XXError", "Sum", 300, 3)
    assert dimensions == {"ApiName": dimensions["ApiName"], "Stage": "${" + stage_id + "}"}
    # token-expired: the oldest connected advertiser's token is older than its 60-minute lifetime.
    assert watched("token-expired") == ("adsauth", OLDEST_TOKEN_AGE_METRIC, "Maximum", 600, powertools, 3600)
    # grant-expiring: the worker counts each refresh (about every 48 min) of an advertiser whose
    # grant ends within 7 days, not re-consented; one in an hour is enough.
    assert watched("grant-expiring") == ("adsauth", GRANTS_EXPIRING_SOON_METRIC, "Sum", 3600, powertools, 1)
    assert alarms["grant-expiring"]["EvaluationPeriods"] == 1
    assert "DatapointsToAlarm" not in alarms["grant-expiring"]
    assert f"ends within {GRANT_EXPIRING_DAYS} days" in alarms["grant-expiring"]["AlarmDescription"]


def test_the_grant_alarm_window_is_the_workers():
    from adsauth.settings import Settings

    assert Settings.__dataclass_fields__["grant_alarm_days"].default == GRANT_EXPIRING_DAYS


def test_token_age_period_spans_two_dispatcher_runs(domain_cfn):
    # refresh_schedule_minutes 2 → still the 10-minute minimum; a slower schedule widens it.
    assert _alarms(domain_cfn)["token-expired"]["Period"] == 600


def test_alarms_watch_metrics_the_code_emits():
    handlers = "\n".join(p.read_text() for p in (LAMBDAS_DIR / "adsauth" / "handlers").glob("*.py"))
    for name in (
        *ONBOARDING_METRICS,
        REFRESH_OK_METRIC,
        REFRESH_FAILED_METRIC,
        REFRESH_ROTATED_METRIC,
        REFRESH_DISPATCHED_METRIC,
        NEEDS_REAUTH_METRIC,
        INVALID_CLIENT_METRIC,
        OLDEST_TOKEN_AGE_METRIC,
        GRANTS_EXPIRING_SOON_METRIC,
        GRANT_EXPIRED_METRIC,
    ):
        assert f'"{name}"' in handlers, f"no handler emits {name}"


def test_alert_topic_refuses_plain_http_and_admits_only_this_accounts_alarms(cfn):
    topic_id, _ = only(cfn, "AWS::SNS::Topic")
    _, policy = only(cfn, "AWS::SNS::TopicPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert [s["Condition"] for s in deny] == [{"Bool": {"aws:SecureTransport": "false"}}]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert render(allow["Resource"]) == "${" + topic_id + "}"


def test_alert_email_is_subscribed_only_when_configured(cfn, domain_cfn):
    assert not resources(cfn, "AWS::SNS::Subscription")
    topic_id, _ = only(domain_cfn, "AWS::SNS::Topic")
    _, subscription = only(domain_cfn, "AWS::SNS::Subscription")
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "alerts@example.com"
    assert subscription["Properties"]["TopicArn"] == {"Ref": topic_id}


def _dashboard_body(cfn: dict) -> str:
    _, dashboard = only(cfn, "AWS::CloudWatch::Dashboard")
    return render(dashboard["Properties"]["DashboardBody"])


def test_the_dashboard_shows_every_alarm_and_figure(variant):
    cfn, stack = variant
    _, dashboard = only(cfn, "AWS::CloudWatch::Dashboard")
    assert dashboard["Properties"]["DashboardName"] == f"{stack}-operations"
    body = _dashboard_body(cfn)
    json.loads(re.sub(r"\$\{[^}]+\}", "x", body))  # valid JSON once references resolve
    for alarm_id in resources(cfn, "AWS::CloudWatch::Alarm"):
        assert "${" + alarm_id + ".Arn}" in body
    for name in (
        *ONBOARDING_METRICS,
        REFRESH_DISPATCHED_METRIC,
        REFRESH_OK_METRIC,
        REFRESH_FAILED_METRIC,
        REFRESH_ROTATED_METRIC,
        NEEDS_REAUTH_METRIC,
        INVALID_CLIENT_METRIC,
        OLDEST_TOKEN_AGE_METRIC,
        GRANTS_EXPIRING_SOON_METRIC,
        GRANT_EXPIRED_METRIC,
        "ApproximateNumberOfMessagesVisible",
        "5XXError",
        "Throttles",
    ):
        assert f'"{name}"' in body, name
    assert ('"BlockedRequests"' in body) == bool(resources(cfn, "AWS::WAFv2::WebACL"))
    outputs = {name: render(o["Value"]) for name, o in cfn["Outputs"].items()}
    assert outputs["DashboardName"] == "${" + only(cfn, "AWS::CloudWatch::Dashboard")[0] + "}"


def test_every_handler_emits_into_the_namespace_the_alarms_watch(variant):
    cfn, _ = variant
    for fn in functions_by_handler(cfn).values():
        assert fn["Properties"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
    for path in (LAMBDAS_DIR / "adsauth" / "handlers").glob("*.py"):
        for call in re.findall(r"Metrics\(([^)]*)\)", path.read_text()):
            namespace = re.search(r'namespace="([^"]*)"', call)
            # In code it overrides the environment; without it the environment's applies.
            assert namespace is None or namespace.group(1) == METRICS_NAMESPACE, (path.name, call)


def test_outputs_name_each_functions_log_group(cfn):
    outputs = {name: o["Value"] for name, o in cfn["Outputs"].items()}
    for handler, fn in functions_by_handler(cfn).items():
        name = handler.split(".")[2].capitalize() + "LogGroup"
        assert outputs[name] == fn["Properties"]["LoggingConfig"]["LogGroup"], name


def _runbook() -> str:
    runbook = (REPO_ROOT / RUNBOOK).read_text()
    assert runbook.startswith(RUNBOOK_HEADING + "\n"), RUNBOOK
    return runbook


def _readme_section(heading: str) -> str:
    """The README's ``## heading`` section, up to the next ``## ``."""
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"\n## {heading}\n" in readme, heading
    section = readme.split(f"\n## {heading}\n", 1)[1]
    return re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]


def _runbook_entries() -> dict[str, str]:
    """slug → the text of its ``#### `slug` `` entry."""
    parts = re.split(r"^#### `([a-z0-9-]+)`\s*$", _runbook(), flags=re.MULTILINE)
    return {parts[i]: re.split(r"^#{2,4} ", parts[i + 1], maxsplit=1, flags=re.MULTILINE)[0] for i in range(1, len(parts), 2)}


@pytest.mark.parametrize("which", ["cfn", "domain_cfn"])
def test_every_alarm_has_a_runbook_entry(which, request):
    """Each alarm's name is <stack>-<slug>; docs/runbook.md has a `#### `<slug>`` entry saying
    what it means and what to do, and no entry for an alarm that does not exist."""
    cfn = request.getfixturevalue(which)
    entries = _runbook_entries()
    slugs = set(_alarms(cfn))
    assert slugs <= set(entries), f"alarms without a runbook entry: {sorted(slugs - set(entries))}"
    assert set(entries) == slugs, f"runbook entries without an alarm: {sorted(set(entries) - slugs)}"
    for slug in slugs:
        assert "What it means:" in entries[slug] and "What to do:" in entries[slug], slug


def test_the_deploy_and_the_runbook_cover_what_ops_must_do():
    deploy = _readme_section("Deploy")  # the one description of a first deployment
    for topic in (
        "### Configure",
        "### Bootstrap and deploy",
        "### Put the LwA client secret",
        "### Register the callback URL",
        "npx aws-cdk@2 deploy AdsAuth",
        "aws secretsmanager put-secret-value",
        "out CallbackUrl",
    ):
        assert topic in deploy, topic
    invite = _readme_section("Invite an advertiser")
    assert "export ADSAUTH_STACK=AdsAuth" in invite and "\nadsauth invite --name" in invite
    runbook = _runbook()
    for topic in (
        "### Prerequisites",
        "### If the first deploy fails",
        "### Rotate the LwA client secret without downtime",
        "### Change the token layout of a running stack",
        "### Alarms",
        "### Destroy the stack without losing tokens",
        "### Break glass",
        "CLIENT_SECRET_MAX_AGE",
        "cdk@2 import AdsAuth",
    ):
        assert topic in runbook, topic


def test_the_runbook_quotes_the_code_correctly():
    from adsauth.adapters.table import PLATFORM_KEY
    from adsauth.refresher import PLATFORM_PAUSE_SECONDS
    from adsauth.wiring import CLIENT_SECRET_MAX_AGE

    runbook = _runbook()
    assert f"`CLIENT_SECRET_MAX_AGE` = {CLIENT_SECRET_MAX_AGE} s" in runbook
    assert f"{PLATFORM_PAUSE_SECONDS // 60} minutes (`PLATFORM_PAUSE_SECONDS`)" in runbook
    key = json.dumps({name: {"S": value} for name, value in PLATFORM_KEY.items()}, separators=(",", ":"))
    assert f"--key '{key}'" in runbook  # the command that ends an invalid_client pause


def test_the_grant_expiring_entry_names_its_metrics_and_commands():
    entry = _runbook_entries()["grant-expiring"]
    for text in (
        f"`{GRANTS_EXPIRING_SOON_METRIC}`",
        f"`{GRANT_EXPIRED_METRIC}`",
        f"within {GRANT_EXPIRING_DAYS} days",
        "`adsauth --stack AdsAuth list --expiring-within 7`",  # the installed command
        "`adsauth --stack AdsAuth reinvite <id>`",
        "`needs_reauth` with reason `grant_expired`",
    ):
        assert text in entry, text
