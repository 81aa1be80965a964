"""Real DynamoDB refuses a request whose ExpressionAttributeValues or ExpressionAttributeNames name
a placeholder that no expression uses (ValidationException); moto does not check values inside a
transaction. The suite installs this check on every boto3 DynamoDB call so such a request fails
here as it would in AWS."""

from __future__ import annotations

import re

import botocore.client
from botocore.exceptions import ClientError

EXPRESSIONS = ("UpdateExpression", "ConditionExpression", "KeyConditionExpression", "FilterExpression",
               "ProjectionExpression")
CHECKED = ("UpdateItem", "PutItem", "DeleteItem", "Query", "Scan", "GetItem")
_real = botocore.client.BaseClient._make_api_call


def unused_placeholders(item: dict) -> list[str]:
    text = " ".join(str(item.get(k, "")) for k in EXPRESSIONS)
    names = [*(item.get("ExpressionAttributeValues") or {}), *(item.get("ExpressionAttributeNames") or {})]
    return [n for n in names if not re.search(re.escape(n) + r"(?![A-Za-z0-9_])", text)]


def _strict(self, operation_name, api_params):
    if self.meta.service_model.service_name == "dynamodb":
        items = []
        if operation_name == "TransactWriteItems":
            items = [item for entry in api_params.get("TransactItems", []) for item in entry.values()]
        elif operation_name in CHECKED:
            items = [api_params]
        for item in items:
            unused = unused_placeholders(item)
            if unused:
                raise ClientError(
                    {"Error": {"Code": "ValidationException",
                               "Message": f"Value provided in ExpressionAttributeValues unused in expressions: keys: {unused}"}},
                    operation_name,
                )
    return _real(self, operation_name, api_params)


def install() -> None:
    botocore.client.BaseClient._make_api_call = _strict
