"""The custom resource behind ``api_cloudwatch_role: "auto"`` (infra/account_logging_handler.py),
run against moto's API Gateway: it sets the stack's role only on an account that has none, never
replaces one, retries while IAM propagates a new role, does nothing on Delete, and answers
CloudFormation every time (FAILED with the error's type only)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import pytest
from moto import mock_aws

from infra import account_logging_handler as setter

OURS = "arn:aws:iam::123456789012:role/adsauth-logging"
THEIRS = "arn:aws:iam::123456789012:role/other-team-apigw-logs"


@pytest.fixture
def apigateway():
    with mock_aws():
        yield boto3.client("apigateway", region_name="us-east-1")


@pytest.fixture
def answers(monkeypatch):
    sent: list[tuple[str, str, dict]] = []
    monkeypatch.setattr(setter, "answer", lambda event, status, reason, data: sent.append((status, reason, data)))
    return sent


def event(request_type: str) -> dict:
    return {
        "RequestType": request_type, "ResponseURL": "https://cloudformation.invalid/response",
        "StackId": "stack", "RequestId": "req", "LogicalResourceId": "Setting",
        "ResourceProperties": {"RoleArn": OURS},
    }


def role_of(apigateway) -> str | None:
    return apigateway.get_account().get("cloudwatchRoleArn")


def set_role(apigateway, arn: str) -> None:
    apigateway.update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}])


def test_an_account_without_a_role_gets_ours(apigateway, answers):
    assert role_of(apigateway) is None
    setter.handler(event("Create"), None, client=apigateway)
    assert role_of(apigateway) == OURS
    assert answers == [("SUCCESS", "", {"Action": "set"})]


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_another_teams_role_is_never_replaced(apigateway, answers, request_type):
    set_role(apigateway, THEIRS)
    setter.handler(event(request_type), None, client=apigateway)
    assert role_of(apigateway) == THEIRS
    assert answers == [("SUCCESS", "", {"Action": "kept"})]


def test_delete_leaves_the_setting_alone(apigateway, answers):
    setter.handler(event("Create"), None, client=apigateway)
    setter.handler(event("Delete"), None, client=apigateway)
    assert role_of(apigateway) == OURS  # other APIs of the region may log through it by now
    assert answers[-1] == ("SUCCESS", "", {})


class _Refusing:
    """API Gateway refusing a just-created role until IAM has propagated it."""

    def __init__(self, client, refusals: int) -> None:
        self.client, self.refusals, self.exceptions = client, refusals, client.exceptions

    def get_account(self):
        return self.client.get_account()

    def update_account(self, **kwargs):
        if self.refusals:
            self.refusals -= 1
            raise self.client.exceptions.BadRequestException(
                {"Error": {"Code": "BadRequestException", "Message": "The role ARN does not have "
                           "required permissions set to API Gateway"}}, "UpdateAccount")
        return self.client.update_account(**kwargs)


def test_a_refusal_while_iam_propagates_is_retried(apigateway):
    slept: list[float] = []
    assert setter.ensure_role(_Refusing(apigateway, 3), OURS, sleep=slept.append) == "set"
    assert (role_of(apigateway), slept) == (OURS, [setter.RETRY_EVERY_SECONDS] * 3)


def test_a_lasting_refusal_fails_the_deploy_with_the_error_type_only(apigateway, answers, monkeypatch):
    clock = iter(range(0, 10_000, setter.RETRY_EVERY_SECONDS))
    monkeypatch.setattr(setter.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(setter.time, "monotonic", lambda: next(clock))
    setter.handler(event("Create"), None, client=_Refusing(apigateway, 10_000))
    assert role_of(apigateway) is None
    (status, reason, data), = answers
    assert (status, data) == ("FAILED", {})
    assert reason == "setting the API Gateway CloudWatch role failed: BadRequestException"
    assert "arn:" not in reason


def test_the_answer_reaches_cloudformation_as_its_protocol_asks():
    received: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802
            received.append((self.command, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        setter.answer({**event("Create"), "ResponseURL": f"http://127.0.0.1:{server.server_port}/r"},
                      "SUCCESS", "", {"Action": "set"})
    finally:
        server.server_close()
    ((method, body),) = received
    assert method == "PUT"
    assert body == {"Status": "SUCCESS", "Reason": "", "PhysicalResourceId": setter.PHYSICAL_ID,
                    "StackId": "stack", "RequestId": "req", "LogicalResourceId": "Setting",
                    "Data": {"Action": "set"}}


def test_the_inline_code_fits_lambdas_limit():
    from infra.account_logging import HANDLER_SOURCE

    assert len(HANDLER_SOURCE.read_bytes()) <= 4096  # CloudFormation's ZipFile limit
