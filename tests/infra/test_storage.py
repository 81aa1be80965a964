"""The table matches adsauth.schema and survives mistakes; the client secret is created empty."""

from __future__ import annotations

import json

from adsauth import schema

from tests.infra.cfn import only, resources
from tests.infra.conftest import CLIENT_ID


def _by_name(items, key="AttributeName"):
    return sorted(items, key=lambda item: item[key])


def test_table_matches_the_schema_module(cfn):
    _, table = only(cfn, "AWS::DynamoDB::Table")
    props = table["Properties"]
    expected = schema.create_table_request("ignored")

    assert props["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == expected["KeySchema"]
    assert _by_name(props["AttributeDefinitions"]) == _by_name(expected["AttributeDefinitions"])
    assert _by_name(props["GlobalSecondaryIndexes"], "IndexName") == _by_name(
        expected["GlobalSecondaryIndexes"], "IndexName"
    )
    assert props["TimeToLiveSpecification"] == {
        "AttributeName": schema.TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert "TableName" not in props  # CloudFormation names it; functions get it from TABLE_NAME


def test_table_is_protected(cfn, domain_cfn):
    _, table = only(cfn, "AWS::DynamoDB::Table")
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True
    }
    # Off by default: CloudFormation cannot delete a protected table, so a failed first deploy
    # could not roll back; on with table_deletion_protection (the domain variant).
    assert table["Properties"]["DeletionProtectionEnabled"] is False
    assert only(domain_cfn, "AWS::DynamoDB::Table")[1]["Properties"]["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "RetainExceptOnCreate"
    assert table["UpdateReplacePolicy"] == "Retain"


def test_client_secret_is_named_retained_and_holds_only_the_client_id(cfn):
    _, secret = only(cfn, "AWS::SecretsManager::Secret")
    props = secret["Properties"]
    assert props["Name"] == "adsauth/AdsAuth/lwa_client"
    # A fixed name: left behind by a rolled-back first deploy, it would block the retry.
    assert secret["DeletionPolicy"] == "RetainExceptOnCreate"
    assert secret["UpdateReplacePolicy"] == "Retain"
    assert "SecretString" not in props
    generated = props["GenerateSecretString"]
    assert json.loads(generated["SecretStringTemplate"]) == {"client_id": CLIENT_ID}
    assert generated["GenerateStringKey"] == "client_secret"


def test_advertiser_secrets_are_not_created_by_the_stack(cfn):
    assert len(resources(cfn, "AWS::SecretsManager::Secret")) == 1


def test_log_groups_have_explicit_retention(cfn):
    groups = resources(cfn, "AWS::Logs::LogGroup")
    # four functions, the API access log, and the deploy-time function of api_cloudwatch_role "auto"
    assert len(groups) == 6
    assert {g["Properties"].get("RetentionInDays") for g in groups.values()} == {30}
