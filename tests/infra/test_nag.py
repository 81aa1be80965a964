"""cdk-nag: no unacknowledged error, and every acknowledgement gives a reason."""

from __future__ import annotations

from aws_cdk.assertions import Annotations, Match

from tests.infra.cfn import walk


def test_no_cdk_nag_errors(synth):
    for stack in synth.stacks:
        errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp(".*"))
        assert errors == [], [f"{e.id}: {e.entry.data}" for e in errors]


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
