"""Custom resource: set the region's API Gateway CloudWatch role only when the account has none.

Deployed as inline code (``infra.account_logging``), so it imports only the standard library and
the runtime's boto3. CloudFormation sends Create, Update and Delete:

- Create/Update: ``GetAccount``; with a ``cloudwatchRoleArn`` already set (another team's, or
  ours from an earlier deploy) nothing changes; without one, ``UpdateAccount`` sets ours. IAM can
  take a few seconds to let API Gateway assume a role that was just created, so a refusal is
  retried for up to ``PROPAGATION_SECONDS``.
- Delete: nothing. Once set, other APIs of the region may log through the role (it is retained).

The answer goes to CloudFormation's pre-signed ``ResponseURL``; ``Data.Action`` is ``set`` or
``kept``. A failure answers FAILED with the error's type only (never a message, which could name
an ARN of another stack).
"""

from __future__ import annotations

import json
import time
import urllib.request

PHYSICAL_ID = "adsauth-api-gateway-account-logging-role"
PROPAGATION_SECONDS = 90
RETRY_EVERY_SECONDS = 5


def ensure_role(client, role_arn: str, *, sleep=time.sleep, clock=time.monotonic) -> str:
    """``set`` when the account had no role and now has ``role_arn``; ``kept`` otherwise."""
    if client.get_account().get("cloudwatchRoleArn"):
        return "kept"
    give_up = clock() + PROPAGATION_SECONDS
    while True:
        try:
            client.update_account(
                patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role_arn}]
            )
            return "set"
        except client.exceptions.BadRequestException:
            # "The role ARN does not have required permissions set to API Gateway": IAM has not
            # propagated the new role's trust policy yet.
            if clock() >= give_up:
                raise
            sleep(RETRY_EVERY_SECONDS)


def answer(event: dict, status: str, reason: str, data: dict) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason,
            "PhysicalResourceId": PHYSICAL_ID,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - CloudFormation's https URL
        pass


def handler(event: dict, context, client=None) -> None:
    status, reason, data = "SUCCESS", "", {}
    try:
        if event["RequestType"] in ("Create", "Update"):
            if client is None:
                import boto3

                client = boto3.client("apigateway")
            data = {"Action": ensure_role(client, event["ResourceProperties"]["RoleArn"])}
        print(json.dumps({"request": event["RequestType"], **data}))
    except Exception as exc:  # CloudFormation waits an hour for an answer that never comes
        status, reason = "FAILED", f"setting the API Gateway CloudWatch role failed: {type(exc).__name__}"
        print(reason)
    answer(event, status, reason, data)
