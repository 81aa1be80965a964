"""cdk-nag (AwsSolutions): no unacknowledged error or warning, and the acknowledgements are exactly
the reviewed ones below, each with a reason. A new finding fails ``test_no_cdk_nag_findings``; a
new or widened suppression fails ``test_suppressions_are_exactly_the_reviewed_ones``."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from aws_cdk.assertions import Annotations, Match

from tests.infra.cfn import walk

SECRETS = "Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:adsauth/<stack>/advertisers/"
# a consumer's grant names the prefix the stack publishes in SSM (adsauth.cdk.coordinates)
SSM_SECRETS = "Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:<ssm:secret-prefix>"
# (rule, resource type, appliesTo) → how many resources carry that acknowledgement, per template.
# appliesTo pins IAM5/IAM4 to the exact wildcard or managed policy; "—" means the rule takes none.
REVIEWED = {
    "cfn": {
        ("AwsSolutions-APIG2", "AWS::ApiGateway::RestApi", "—"): 1,
        ("AwsSolutions-APIG3", "AWS::ApiGateway::Stage", "—"): 1,  # waf_enabled: false
        ("AwsSolutions-APIG4", "AWS::ApiGateway::Method", "—"): 3,  # the three browser GETs
        ("AwsSolutions-COG4", "AWS::ApiGateway::Method", "—"): 4,
        # X-Ray, one per function: the four of adsauth and (api_cloudwatch_role "auto") the
        # deploy-time function that sets the account's API Gateway logging role if none is set
        ("AwsSolutions-IAM5", "AWS::IAM::Policy", "Resource::*"): 5,
        ("AwsSolutions-IAM4", "AWS::IAM::Role", "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"): 1,
        # no "<table>/index/*" any more: each role names the indexes it queries (Storage.grant_items)
        # advertisers' secrets written by the callback and (moves in and out of packs) the worker
        ("AwsSolutions-IAM5", "AWS::IAM::Policy", SECRETS + "refresh/*|" + SECRETS + "access/*"): 2,
        ("AwsSolutions-IAM5", "AWS::IAM::Policy", SECRETS + "refresh/*"): 1,
        ("AwsSolutions-IAM5", "AWS::IAM::Policy", SECRETS + "access/*"): 1,
        # the worker reads the packs' access tokens, no advertiser's own (Storage.grant_token_moves)
        ("AwsSolutions-IAM5", "AWS::IAM::Policy", SECRETS + "access/packs/*"): 1,
        ("AwsSolutions-SMG4", "AWS::SecretsManager::Secret", "—"): 1,
        ("AwsSolutions-SQS3", "AWS::SQS::Queue", "—"): 1,  # the dispatcher DLQ
    },
    "consumer_cfn": {
        ("AwsSolutions-IAM5", "AWS::IAM::Policy", "Resource::*"): 1,
        ("AwsSolutions-IAM5", "AWS::IAM::Policy", SSM_SECRETS + "access/*"): 1,
    },
}
# With WAF on, the stage needs no APIG3 acknowledgement; with api_cloudwatch_role "create", CDK's
# AWS::ApiGateway::Account replaces the deploy-time setter function (one X-Ray wildcard fewer);
# the logging role and its AWS-managed policy are the same; everything else is the same.
REVIEWED["domain_cfn"] = {
    **{key: count for key, count in REVIEWED["cfn"].items() if key[0] != "AwsSolutions-APIG3"},
    ("AwsSolutions-IAM5", "AWS::IAM::Policy", "Resource::*"): 4,
}


def _suppressions(template: dict) -> Counter:
    found: Counter = Counter()
    for resource in template["Resources"].values():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            applies_to = rule.get("applies_to") or rule.get("appliesTo")
            if applies_to:
                text = "|".join(applies_to)
                text = re.sub(r"adsauth/AdsAuth\w*/", "adsauth/<stack>/", text)
                text = re.sub(r"<StorageTable\w+\.Arn>", "<table>.Arn>", text)
                text = re.sub(r"<SsmParameterValueadsauth\w+secretprefix\w+Parameter>", "<ssm:secret-prefix>", text)
            else:
                text = "—"
            found[(rule["id"], resource["Type"], text)] += 1
    return found


def test_no_cdk_nag_findings(synth):
    """Zero unacknowledged errors and warnings in every stack of the app."""
    for stack in synth.stacks:
        annotations = Annotations.from_stack(stack)
        findings = [
            *annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*")),
            *annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*")),
        ]
        assert findings == [], [f"{f.id}: {f.entry.data}" for f in findings]


def test_no_cdk_nag_findings_in_what_cdk_synth_builds(app_synth):
    """The stack app.py builds from cdk.json (with a domain as SES sender)."""
    annotations = Annotations.from_stack(app_synth.stack)
    findings = [
        *annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*")),
        *annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*")),
    ]
    assert findings == [], [f"{f.id}: {f.entry.data}" for f in findings]


@pytest.mark.parametrize("variant", sorted(REVIEWED))
def test_suppressions_are_exactly_the_reviewed_ones(variant, request):
    found = _suppressions(request.getfixturevalue(variant))
    assert dict(found) == REVIEWED[variant]


def test_suppressions_have_reasons(cfn, domain_cfn, consumer_cfn):
    for template in (cfn, domain_cfn, consumer_cfn):
        suppressions = [
            rule
            for key, value in walk(template)
            if key == "rules_to_suppress"
            for rule in value
        ]
        assert suppressions
        for rule in suppressions:
            assert len(rule["reason"]) >= 40, rule
