"""Lambda handlers for the local gateway's tests (referenced as
``tests.integration.gateway_fixtures:<name>``)."""

from __future__ import annotations

import base64
import json
import time

BINARY = bytes(range(256))


def echo(event, context):
    """Return the event and the context's fields as JSON."""
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(
            {
                "event": event,
                "context": {
                    "function_name": context.function_name,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "invoked_function_arn": context.invoked_function_arn,
                    "aws_request_id": context.aws_request_id,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                },
            }
        ),
    }


def cookies(event, context):
    """Two Set-Cookie values (one repeated in ``headers``) and a base64-encoded binary body."""
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/octet-stream", "Set-Cookie": "b=2; Path=/", "X-Single": "one"},
        "multiValueHeaders": {"Set-Cookie": ["a=1; Path=/; HttpOnly", "b=2; Path=/"], "X-Multi": ["x", "y"]},
        "body": base64.b64encode(BINARY).decode("ascii"),
        "isBase64Encoded": True,
    }


def redirect(event, context):
    """A 302 without a body, the way the OAuth handlers answer."""
    return {"statusCode": 302, "headers": {"Location": "https://example.com/next"}, "body": ""}


def boom(event, context):
    raise RuntimeError("secret-value-that-must-not-be-logged")


def malformed(event, context):
    """A payload-format 2.0 response (``cookies``): a REST API rejects it."""
    return {"statusCode": 200, "cookies": ["a=1"], "body": "x"}


def slow(event, context):
    time.sleep(1.0)
    return {"statusCode": 200, "body": "late"}
