"""Runs last: no token, code, state, verifier or secret value used anywhere in the suite appears
in any log record the suite produced, nor in any DynamoDB item."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.conftest import CAPTURED, SENSITIVE
from tests.proof import record_leaks


@pytest.mark.last
def test_no_sensitive_value_in_any_log_record_or_item(stack):
    assert SENSITIVE, "the suite registered no sensitive values: the scan would prove nothing"
    assert any("authorization finished" in line for line in CAPTURED), "no handler log was captured"
    logged = [(value, line) for line in CAPTURED for value in SENSITIVE if value in line]
    items = json.dumps(boto3.resource("dynamodb").Table("adsauth-local").scan()["Items"], default=str)
    stored = [value for value in SENSITIVE if value in items]
    record_leaks(len(logged) + len(stored))  # before asserting, so a leak shows in the proof line
    assert not logged, f"{len(logged)} log records hold a sensitive value, e.g. {logged[0][1][:200]}"
    assert not stored, f"{len(stored)} sensitive values are stored in DynamoDB items"
