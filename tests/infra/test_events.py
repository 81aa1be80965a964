"""The lifecycle event bus: the stack owns it, publishes its name and ARN, and exactly the
callback, the dispatcher and the refresh worker may put events on it (and know its name); the
connect function and downstream may not."""

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
    role_of,
    role_statements,
)

CONNECT = "adsauth.handlers.connect.handler"
PUBLISHERS = (
    "adsauth.handlers.callback.handler",
    "adsauth.handlers.dispatcher.handler",
    "adsauth.handlers.worker.handler",
)
VARIANTS = {"cfn": "AdsAuth", "domain_cfn": "AdsAuthDomain"}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request):
    return request.getfixturevalue(request.param), VARIANTS[request.param]


def test_the_stack_owns_one_bus_named_after_it(variant):
    cfn, stack = variant
    _, bus = only(cfn, "AWS::Events::EventBus")
    assert bus["Properties"]["Name"] == f"adsauth-{stack}"
    # No state in it: it goes with the stack, like the queues and the alert topic.
    assert bus["DeletionPolicy"] == bus["UpdateReplacePolicy"] == "Delete"


def test_outputs_name_the_bus(variant):
    cfn, _ = variant
    bus_id, _ = only(cfn, "AWS::Events::EventBus")
    outputs = {name: render(o["Value"]) for name, o in cfn["Outputs"].items()}
    assert outputs["EventBusName"] == "${" + bus_id + "}"
    assert outputs["EventBusArn"] == "${" + bus_id + ".Arn}"


def test_exactly_the_publishers_may_put_events_on_exactly_this_bus(variant):
    cfn, _ = variant
    bus_id, _ = only(cfn, "AWS::Events::EventBus")
    functions = functions_by_handler(cfn)
    allowed = {
        role_id
        for role_id, statements in role_statements(cfn).items()
        for s in statements
        if s["Effect"] == "Allow" and any(fnmatch.fnmatch("events:PutEvents", a) for a in actions(s))
    }
    assert allowed == {role_of(functions[handler]) for handler in PUBLISHERS}
    for statement in all_statements(cfn):
        if any(a.startswith("events:") for a in actions(statement)):
            assert actions(statement) == ["events:PutEvents"], statement
            assert [render(r) for r in as_list(statement["Resource"])] == ["${" + bus_id + ".Arn}"]


def test_the_publishers_get_the_bus_name_and_connect_does_not(variant):
    cfn, _ = variant
    bus_id, _ = only(cfn, "AWS::Events::EventBus")
    functions = functions_by_handler(cfn)
    for handler in PUBLISHERS:
        assert functions[handler]["Properties"]["Environment"]["Variables"]["EVENT_BUS_NAME"] == {
            "Ref": bus_id
        }, handler
    assert "EVENT_BUS_NAME" not in functions[CONNECT]["Properties"]["Environment"]["Variables"]


def test_downstream_may_not_publish(consumer_cfn):
    assert not [s for s in all_statements(consumer_cfn) if any(a.startswith("events:") for a in actions(s))]
