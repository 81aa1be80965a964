"""cfn-lint finds no error (a dependency cycle, for one, would be E3004) and no warning in any
template, with every rule enabled."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["cfn", "domain_cfn", "consumer_cfn"])
def test_cfn_lint_reports_no_errors_or_warnings(variant, request):
    from cfnlint.api import ManualArgs, lint

    template = request.getfixturevalue(variant)
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))
    findings = [m for m in matches if m.rule.id[0] in "EW"]
    assert findings == [], [str(m) for m in findings]
