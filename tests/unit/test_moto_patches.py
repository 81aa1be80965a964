"""The local stack's cheaper transaction rollback keeps moto's transaction semantics: a
cancelled transaction changes nothing, a successful one changes everything it names."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from local import moto_patches

REGION = "ap-south-1"  # not the session stack's region (moto's backends are shared in-process)


@pytest.fixture
def table(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    moto_patches.apply()
    mock = mock_aws()
    mock.start(reset=False)
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(TableName="tx", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    try:
        yield client
    finally:
        client.delete_table(TableName="tx")
        mock.stop(remove_data=False)


def item(client, pk):
    return client.get_item(TableName="tx", Key={"pk": {"S": pk}}).get("Item")


def test_a_cancelled_transaction_changes_nothing(table):
    table.put_item(TableName="tx", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    with pytest.raises(table.exceptions.TransactionCanceledException) as raised:
        table.transact_write_items(TransactItems=[
            {"Update": {"TableName": "tx", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}}}},
            {"Put": {"TableName": "tx", "Item": {"pk": {"S": "b"}}}},
            {"ConditionCheck": {"TableName": "tx", "Key": {"pk": {"S": "missing"}},
                                "ConditionExpression": "attribute_exists(pk)"}},
        ])
    codes = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert codes == ["None", "None", "ConditionalCheckFailed"]
    assert item(table, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}} and item(table, "b") is None


def test_a_transaction_that_holds_changes_everything_it_names(table):
    table.put_item(TableName="tx", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    table.transact_write_items(TransactItems=[
        {"Update": {"TableName": "tx", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET n = :two",
                    "ConditionExpression": "n = :one",
                    "ExpressionAttributeValues": {":two": {"N": "2"}, ":one": {"N": "1"}}}},
        {"Put": {"TableName": "tx", "Item": {"pk": {"S": "b"}}}},
    ])
    assert item(table, "a")["n"] == {"N": "2"} and item(table, "b") == {"pk": {"S": "b"}}


def test_conditional_writes_are_atomic_as_in_dynamodb(table, monkeypatch):
    """Many threads take one lease at once with a conditional put: exactly one wins (moto alone
    checks, then writes, unlocked; DynamoDB applies the condition atomically). The table's read
    of the current item is slowed down so that, without the patch, another thread writes between
    a put's check and its write."""
    import threading
    import time

    from botocore.exceptions import ClientError
    from moto.dynamodb.models.table import Table

    real_get = Table.get_item

    def slow_get(self, *args, **kwargs):
        current = real_get(self, *args, **kwargs)
        time.sleep(0.002)
        return current

    monkeypatch.setattr(Table, "get_item", slow_get)

    won, start = [], threading.Barrier(16)

    def take(owner: str) -> None:
        start.wait()
        try:
            table.put_item(TableName="tx", Item={"pk": {"S": "lease"}, "owner": {"S": owner}},
                           ConditionExpression="attribute_not_exists(pk)")
            won.append(owner)
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"

    for _ in range(20):
        table.delete_item(TableName="tx", Key={"pk": {"S": "lease"}})
        won.clear()
        threads = [threading.Thread(target=take, args=(f"o{i}",)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1
        assert item(table, "lease")["owner"]["S"] == won[0]
