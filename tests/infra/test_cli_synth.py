"""The configuration through the path ops use: a cdk.json and the real CDK CLI (``cdk synth``).

Two CLI runs in a temporary directory whose cdk.json points at this checkout's app.py: one that
sets every optional key (explicit nulls included) and checks the template, one with a null where
none is allowed, which must fail with the clear error and exit code 1. Nothing else in the suite
runs the CLI (it takes 10-30 s); the other infra tests synthesize in-process (conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.cfn import functions_by_handler, only, render, resources
from infra.config import OPERATOR_NAME_PLACEHOLDER, OPERATOR_NAME_REQUIRED
from tests.infra.conftest import CLIENT_ID, OPERATOR_ARN, OPERATOR_NAME, REPO_ROOT

pytestmark = pytest.mark.slow

CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/1234abcd-12ab-34cd-56ef-1234567890ab"
CALLBACK = "adsauth.handlers.callback.handler"

# Every key of the block, optional ones set away from their defaults, nulls where allowed.
EVERY_KEY = {
    "client_id": CLIENT_ID,
    "scope": "advertising::audiences",
    "allowed_regions": ["EU", "FE"],
    "callback_domain": "auth.example.com",
    "certificate_arn": CERT,
    "stage_name": "live",
    "invitation_ttl_days": 3,
    "ses_sender": "example.com",
    "ses_from_address": "adsauth@example.com",
    "operator_name": OPERATOR_NAME,  # in place of cdk.json's placeholder, as ops do
    "support_contact": "https://northwind.example/support",
    "footer_text": None,
    "refresh_schedule_minutes": 2,
    "refresh_lead_minutes": 14,
    "refresh_concurrency": 4,
    "profile_refresh_hours": 6,
    "alert_email": None,
    "api_throttle_rate_limit": 10,
    "api_throttle_burst_limit": 20,
    "callback_reserved_concurrency": 10,
    "waf_enabled": True,
    "waf_rate_limit": 500,
    "api_cloudwatch_role": "create",
    "token_layout": "per_advertiser",
    "table_deletion_protection": True,
    "operator_principal_arns": [OPERATOR_ARN],
    "grant_lifetime_days": 200,
    "grant_expiry_from": "2026-07-01",
    "reconsent_lead_days": [14, 3],
}


def _cdk_synth(tmp_path: Path, adsauth: dict) -> subprocess.CompletedProcess:
    flags = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    cdk_json = {
        "app": f"{sys.executable} {REPO_ROOT / 'app.py'}",
        "context": {**flags, "adsauth": adsauth},
    }
    (tmp_path / "cdk.json").write_text(json.dumps(cdk_json))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CDK_CONTEXT_JSON", "CONTEXT_OVERFLOW_LOCATION_ENV", "CDK_OUTDIR")
    }
    env.update(JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1", CDK_DISABLE_CLI_TELEMETRY="true")
    npx = shutil.which("npx")
    assert npx, "the CDK CLI needs Node.js (npx) on PATH; see docs/runbook.md, Prerequisites"
    return subprocess.run(
        [npx, "--yes", "aws-cdk@2", "synth", "--quiet", "--no-notices", "-o", str(tmp_path / "cdk.out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cdk_synth_with_every_key_set_including_nulls(tmp_path):
    assert set(EVERY_KEY) == set(json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["adsauth"])
    result = _cdk_synth(tmp_path, EVERY_KEY)
    assert result.returncode == 0, result.stderr[-3000:]
    cfn = json.loads((tmp_path / "cdk.out" / "AdsAuth.template.json").read_text())

    callback = functions_by_handler(cfn)[CALLBACK]["Properties"]
    assert callback["ReservedConcurrentExecutions"] == 10
    reserved = [
        fn["Properties"]["ReservedConcurrentExecutions"]
        for fn in resources(cfn, "AWS::Lambda::Function").values()
        if "ReservedConcurrentExecutions" in fn["Properties"]
    ]
    assert reserved == [10]  # the callback only; no dispatcher reservation
    env = callback["Environment"]["Variables"]
    assert env["SES_FROM_ADDRESS"] == "adsauth@example.com" and "SES_SENDER" not in env
    assert env["ALLOWED_REGIONS"] == "EU,FE" and env["LWA_SCOPE"] == "advertising::audiences"
    assert env["RECONSENT_LEAD_DAYS"] == "14,3"
    assert env["OPERATOR_NAME"] == OPERATOR_NAME
    assert env["SUPPORT_CONTACT"] == "https://northwind.example/support"
    assert "FOOTER_TEXT" not in env  # footer_text: null
    outputs = {name: render(o["Value"]) for name, o in cfn["Outputs"].items()}
    assert outputs["SesFromAddress"] == "adsauth@example.com"
    assert outputs["CallbackUrl"] == "https://auth.example.com/callback"
    assert outputs["OperatorName"] == OPERATOR_NAME
    assert outputs["SupportContact"] == "https://northwind.example/support" and "FooterText" not in outputs
    assert not resources(cfn, "AWS::SNS::Subscription")  # alert_email: null
    assert only(cfn, "AWS::ApiGateway::Account")  # api_cloudwatch_role: create
    assert only(cfn, "AWS::WAFv2::WebACL")
    _, table = only(cfn, "AWS::DynamoDB::Table")
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    _, stage = only(cfn, "AWS::ApiGateway::Stage")
    assert stage["Properties"]["StageName"] == "live"
    assert stage["Properties"].get("TracingEnabled") is not True
    # token_layout reaches the two functions that plan and write tokens, and the CLI (an output)
    functions = functions_by_handler(cfn)
    for handler in ("adsauth.handlers.dispatcher.handler", "adsauth.handlers.worker.handler"):
        assert functions[handler]["Properties"]["Environment"]["Variables"]["TOKEN_LAYOUT"] == "per_advertiser"
    assert outputs["TokenLayout"] == "per_advertiser"


def test_cdk_synth_refuses_a_null_where_none_is_allowed(tmp_path):
    result = _cdk_synth(tmp_path, {**EVERY_KEY, "refresh_concurrency": None, "stage_name": None,
                                   "operator_name": OPERATOR_NAME_PLACEHOLDER})  # cdk.json's, unchanged
    assert result.returncode == 1, result.stderr[-3000:]
    assert "invalid cdk.json context 'adsauth':" in result.stderr
    assert (
        "  - stage_name must match ^[A-Za-z0-9_]+$; got null (null is not allowed here; leave the "
        'key out for the default, "prod")'
    ) in result.stderr
    assert "  - refresh_concurrency must be an integer from 2 to 50" in result.stderr
    assert (
        f'  - {OPERATOR_NAME_REQUIRED}; cdk.json still holds the placeholder "{OPERATOR_NAME_PLACEHOLDER}": '
        "replace it with the name advertisers know you by\n"
    ) in result.stderr
    assert not (tmp_path / "cdk.out" / "AdsAuth.template.json").exists()
