"""In-process moto for a test module beside the session stack's moto server.

The local stack's moto server shares moto's in-process backends, so a reset would wipe it: a
module using this works in a region of its own (set ``AWS_DEFAULT_REGION``/``AWS_REGION`` first,
and unset ``AWS_ENDPOINT_URL``), resets nothing, and removes what it made.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import boto3
from moto import mock_aws

from adsauth import schema


def in_process_aws(monkeypatch, region: str) -> None:
    """boto3 for this test: in-process moto in ``region``, with fake credentials (the session
    stack may have pointed boto3 at its moto server)."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.setenv(name, region)


@contextmanager
def own_region(table: str) -> Iterator[None]:
    """moto in process with the adsauth table ``table``; on exit the table and every secret of
    the region are deleted."""
    mock = mock_aws()
    mock.start(reset=False)
    dynamodb, sm = boto3.client("dynamodb"), boto3.client("secretsmanager")
    try:
        dynamodb.create_table(**schema.create_table_request(table))
        yield
    finally:
        dynamodb.delete_table(TableName=table)
        for page in sm.get_paginator("list_secrets").paginate():
            for secret in page["SecretList"]:
                sm.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
        mock.stop(remove_data=False)
