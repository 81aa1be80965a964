"""The refresher: schedule, queue and DLQ, bounded workers, alerts; both variants of the session
app (defaults, and schedule 2 min / lead 15 / concurrency 8 / profiles 12 h / alert email)."""

from __future__ import annotations

import pytest

from adsauth.packs import PACK_LEASE_SECONDS, PACK_MARGIN_SECONDS
from infra.constants import REFRESH_LEASE_SECONDS
from tests.infra.cfn import as_list, functions_by_handler, only, render, resources, role_of, role_statements

DISPATCHER = "adsauth.handlers.dispatcher.handler"
WORKER = "adsauth.handlers.worker.handler"
VARIANTS = {
    # fixture: (rate, lead s, concurrency, profile refresh s, token layout)
    "cfn": ("rate(1 minute)", 12 * 60, 5, 24 * 3600, "packed"),
    "domain_cfn": ("rate(2 minutes)", 15 * 60, 8, 12 * 3600, "per_advertiser"),
}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request):
    return request.getfixturevalue(request.param), VARIANTS[request.param]


def _function_id(cfn: dict, handler: str) -> str:
    return next(
        logical_id
        for logical_id, fn in resources(cfn, "AWS::Lambda::Function").items()
        if fn["Properties"]["Handler"] == handler
    )


def _queues(cfn: dict) -> tuple[tuple[str, dict], tuple[str, dict]]:
    """(refresh queue, refresh DLQ): the queue with a redrive policy, and the one it names."""
    queues = resources(cfn, "AWS::SQS::Queue")
    ((queue_id, queue),) = [(q, p) for q, p in queues.items() if "RedrivePolicy" in p["Properties"]]
    dlq_id = queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    return (queue_id, queue), (dlq_id, queues[dlq_id])


def _dispatcher_dlq(cfn: dict) -> tuple[str, dict]:
    """The dispatcher's on-failure destination."""
    _, invoke_config = only(cfn, "AWS::Lambda::EventInvokeConfig")
    destination = invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    dlq_id = destination["Fn::GetAtt"][0]
    return dlq_id, cfn["Resources"][dlq_id]


def test_schedule_runs_the_dispatcher_at_the_configured_rate(variant):
    cfn, (rate, *_) = variant
    _, rule = only(cfn, "AWS::Events::Rule")
    props = rule["Properties"]
    assert props["ScheduleExpression"] == rate
    assert props["State"] == "ENABLED"
    (target,) = props["Targets"]
    assert render(target["Arn"]) == "${" + _function_id(cfn, DISPATCHER) + ".Arn}"


def test_dispatcher_runs_do_not_pile_up(cfn):
    props = functions_by_handler(cfn)[DISPATCHER]["Properties"]
    # No reserved concurrency (new accounts have none to give): the dispatch lease serializes runs.
    assert "ReservedConcurrentExecutions" not in props
    assert props["Timeout"] == 60
    _, invoke_config = only(cfn, "AWS::Lambda::EventInvokeConfig")
    assert render(invoke_config["Properties"]["FunctionName"]) == "${" + _function_id(cfn, DISPATCHER) + "}"
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 0


def test_failed_or_dropped_dispatcher_runs_land_in_the_dispatcher_dlq(cfn):
    dlq_id, dlq = _dispatcher_dlq(cfn)
    (_, refresh_queue), (refresh_dlq_id, _) = _queues(cfn)
    assert dlq["Type"] == "AWS::SQS::Queue" and dlq_id != refresh_dlq_id
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    _, rule = only(cfn, "AWS::Events::Rule")
    (target,) = rule["Properties"]["Targets"]
    assert render(target["DeadLetterConfig"]["Arn"]) == "${" + dlq_id + ".Arn}"
    dispatcher_role = role_of(functions_by_handler(cfn)[DISPATCHER])
    sends = [
        s
        for s in role_statements(cfn)[dispatcher_role]
        if "sqs:SendMessage" in as_list(s["Action"])
        and "${" + dlq_id + ".Arn}" in [render(r) for r in as_list(s["Resource"])]
    ]
    assert sends, "the on-failure destination needs sqs:SendMessage on the dispatcher DLQ"
    # EventBridge may deliver to it, from this rule only.
    allowed = [
        s
        for policy in resources(cfn, "AWS::SQS::QueuePolicy").values()
        if {"Ref": dlq_id} in policy["Properties"]["Queues"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    assert [s["Principal"] for s in allowed] == [{"Service": "events.amazonaws.com"}]


def test_queue_and_dlq(cfn):
    (queue_id, queue), (dlq_id, dlq) = _queues(cfn)
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 5
    assert render(redrive["deadLetterTargetArn"]) == "${" + dlq_id + ".Arn}"
    worker_timeout = functions_by_handler(cfn)[WORKER]["Properties"]["Timeout"]
    assert worker_timeout == 120  # a pack job: up to 100 refreshes, 10 at a time
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * worker_timeout
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    for props in (queue["Properties"], dlq["Properties"]):
        assert props["SqsManagedSseEnabled"] is True


def test_queues_refuse_plain_http(cfn):
    enforced = set()
    for policy in resources(cfn, "AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                enforced.add(render(statement["Resource"]))
    assert enforced == {"${" + q + ".Arn}" for q in resources(cfn, "AWS::SQS::Queue")}
    assert len(enforced) == 3  # refresh queue, refresh DLQ, dispatcher DLQ


def test_worker_event_source_is_bounded_and_reports_partial_failures(variant):
    cfn, (_, _, concurrency, *_) = variant
    (queue_id, _), _ = _queues(cfn)
    _, mapping = only(cfn, "AWS::Lambda::EventSourceMapping")
    props = mapping["Properties"]
    assert render(props["EventSourceArn"]) == "${" + queue_id + ".Arn}"
    assert render(props["FunctionName"]) == "${" + _function_id(cfn, WORKER) + "}"
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == 10
    assert props["ScalingConfig"] == {"MaximumConcurrency": concurrency}


def test_refresher_environment(variant):
    cfn, (_, lead_seconds, _, profile_seconds, layout) = variant
    (queue_id, _), _ = _queues(cfn)
    topic_id, _ = only(cfn, "AWS::SNS::Topic")
    functions = functions_by_handler(cfn)
    api_env = functions["adsauth.handlers.connect.handler"]["Properties"]["Environment"]["Variables"]
    for handler in (DISPATCHER, WORKER):
        env = functions[handler]["Properties"]["Environment"]["Variables"]
        # Everything the API functions get (settings), plus the refresher's own.
        assert {k: v for k, v in env.items() if k in api_env} == api_env
        assert env["REFRESH_QUEUE_URL"] == {"Ref": queue_id}
        assert env["ALERT_TOPIC_ARN"] == {"Ref": topic_id}
        assert env["REFRESH_LEAD_SECONDS"] == str(lead_seconds)
        assert env["PROFILE_REFRESH_SECONDS"] == str(profile_seconds)
        assert env["REFRESH_LEASE_SECONDS"] == str(REFRESH_LEASE_SECONDS)
        assert env["TOKEN_LAYOUT"] == layout
    # the API functions never write a pack: they do not get the layout
    assert "TOKEN_LAYOUT" not in api_env
    # A lease outlives the worker holding it, so no second worker starts while it runs; a pack's
    # lease too (a pack's job runs in one worker invocation).
    assert REFRESH_LEASE_SECONDS > functions[WORKER]["Properties"]["Timeout"]
    assert PACK_LEASE_SECONDS > functions[WORKER]["Properties"]["Timeout"]
    # ... and the pack job leaves itself the margin to store what it refreshed
    assert PACK_MARGIN_SECONDS < functions[WORKER]["Properties"]["Timeout"] / 2


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


def test_outputs_name_the_topic_and_queues(cfn):
    (queue_id, _), (dlq_id, _) = _queues(cfn)
    dispatcher_dlq_id, _ = _dispatcher_dlq(cfn)
    topic_id, _ = only(cfn, "AWS::SNS::Topic")
    outputs = {name: render(o["Value"]) for name, o in cfn["Outputs"].items()}
    assert outputs["AlertTopicArn"] == "${" + topic_id + "}"
    assert outputs["RefreshQueueUrl"] == "${" + queue_id + "}"
    assert outputs["RefreshDlqUrl"] == "${" + dlq_id + "}"
    assert outputs["DispatcherDlqUrl"] == "${" + dispatcher_dlq_id + "}"
