"""cfn-lint finds no error in any template (a dependency cycle, for one, would be E3004)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["cfn", "domain_cfn", "consumer_cfn"])
def test_cfn_lint_reports_no_errors(variant, request):
    from cfnlint.api import ManualArgs, lint

    template = request.getfixturevalue(variant)
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))
    errors = [m for m in matches if m.rule.id.startswith("E")]
    assert errors == [], [str(m) for m in errors]
