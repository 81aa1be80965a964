"""One synth per session: a single App holding the default stack, a variant (custom domain, SES
sender, alert email, non-default refresher settings, WAF on, its own throttling, a reserved
callback concurrency, the stack-created API Gateway logging role, table deletion protection, an
operator principal) and the example consumer of the default stack.

Bundling is skipped (``aws:cdk:bundling-stacks: []``); the feature flags are the ones in cdk.json,
so the tests see what ``cdk synth`` ships. cdk-nag runs as in app.py.

``app_synth`` (on first use) goes the way ``cdk synth`` does: cdk.json's whole context, its
``adsauth`` block with ``APP_OVERRIDES``, handed to ``app.build`` as the CDK CLI hands it to
app.py: JSON in ``CDK_CONTEXT_JSON``, nulls intact (jsii drops null-valued keys from the App's
context, so cdk.json's explicit nulls must not depend on it). tests/infra/test_cli_synth.py runs
the real CLI once.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import pytest  # noqa: E402
from aws_cdk import App, Aspects  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.config import load_config  # noqa: E402
from infra.context import CONTEXT_ENV, CONTEXT_OVERFLOW_ENV  # noqa: E402
from infra.consumer_example import ExampleConsumerStack  # noqa: E402
from infra.stack import AdsAuthStack  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]

CLIENT_ID = "amzn1.application-oa2-client.0123456789abcdef0123456789abcdef"
OPERATOR_ARN = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdsAuthOps_*"

# What ops put in cdk.json in place of the shipped placeholder (synth refuses it), and the
# optional branding of the variant.
OPERATOR_NAME = "Northwind Media"
SUPPORT_CONTACT = "ads-support@acme.example"
FOOTER_TEXT = "Acme Media Ltd \u00b7 \"Ads\" & more"

DEFAULT_CONFIG = {
    "client_id": CLIENT_ID,
    "scope": "advertising::campaign_management",
    "allowed_regions": ["NA", "EU"],
    "callback_domain": None,
    "certificate_arn": None,
    "stage_name": "prod",
    "invitation_ttl_days": 7,
    "ses_sender": None,
    "ses_from_address": None,
    "operator_name": OPERATOR_NAME,
    "support_contact": None,
    "footer_text": None,
    "refresh_schedule_minutes": 1,
    "refresh_lead_minutes": 12,
    "refresh_concurrency": 5,
    "profile_refresh_hours": 24,
    "alert_email": None,
    "api_throttle_rate_limit": 50,
    "api_throttle_burst_limit": 100,
    "callback_reserved_concurrency": None,
    "waf_enabled": False,
    "waf_rate_limit": 300,
    "api_cloudwatch_role": "auto",
    "token_layout": "packed",
    "table_deletion_protection": False,
    "operator_principal_arns": [],
    "grant_lifetime_days": 365,
    "grant_expiry_from": "2026-06-30",
    "reconsent_lead_days": [30, 7, 1],
}

DOMAIN_CONFIG = {
    **DEFAULT_CONFIG,
    "callback_domain": "auth.example.com",
    "certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/1234abcd-12ab-34cd-56ef-1234567890ab",
    "stage_name": "live",
    "ses_sender": "ops@example.com",
    "operator_name": "Acme Media",
    "support_contact": SUPPORT_CONTACT,
    "footer_text": FOOTER_TEXT,
    "refresh_schedule_minutes": 2,
    "refresh_lead_minutes": 15,
    "refresh_concurrency": 8,
    "profile_refresh_hours": 12,
    "alert_email": "alerts@example.com",
    "api_throttle_rate_limit": 20,
    "api_throttle_burst_limit": 40,
    "callback_reserved_concurrency": 10,
    "waf_enabled": True,
    "waf_rate_limit": 1000,
    "api_cloudwatch_role": "create",
    "token_layout": "per_advertiser",
    "table_deletion_protection": True,
    "operator_principal_arns": [OPERATOR_ARN],
}


# The operator's name (cdk.json ships a placeholder that synth refuses) and an https support
# contact, non-default grant settings (leads out of order), a domain as the SES sender with an address of
# a subdomain to send from, explicit nulls (which jsii would drop), and the account's API Gateway
# logging role left alone ("existing").
APP_OVERRIDES = {
    "operator_name": OPERATOR_NAME,
    "support_contact": "https://northwind.example/support",
    "grant_lifetime_days": 180,
    "grant_expiry_from": "2027-01-15",
    "reconsent_lead_days": [7, 30, 14],
    "ses_sender": "example.com",
    "ses_from_address": "adsauth@mail.example.com",
    "callback_reserved_concurrency": None,
    "alert_email": None,
    "api_cloudwatch_role": "existing",
}


def _cdk_json_flags() -> dict:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return {key: value for key, value in context.items() if key != "adsauth"}


class Synth:
    def __init__(self) -> None:
        self.app = App(
            context={
                **_cdk_json_flags(),
                "aws:cdk:bundling-stacks": [],
                "adsauth": DEFAULT_CONFIG,
            }
        )
        self.stack = AdsAuthStack(self.app, "AdsAuth", config=load_config(DEFAULT_CONFIG))
        self.domain_stack = AdsAuthStack(
            self.app, "AdsAuthDomain", config=load_config(DOMAIN_CONFIG)
        )
        self.consumer_stack = ExampleConsumerStack(
            self.app, "AdsAuthExampleConsumer", adsauth=self.stack
        )
        Aspects.of(self.app).add(AwsSolutionsChecks())
        # Template.from_stack synthesizes the App once; later calls reuse the assembly.
        self.template = Template.from_stack(self.stack)
        self.domain_template = Template.from_stack(self.domain_stack)
        self.consumer_template = Template.from_stack(self.consumer_stack)

    @property
    def stacks(self):
        return (self.stack, self.domain_stack, self.consumer_stack)


class AppSynth:
    def __init__(self) -> None:
        import app as cdk_app

        context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
        context = {
            **context,
            "adsauth": {**context["adsauth"], **APP_OVERRIDES},
            "aws:cdk:bundling-stacks": [],
        }
        self.app = App(context=context)
        with _cli_context(context):
            self.stack = cdk_app.build(self.app)
        self.template = Template.from_stack(self.stack)


@contextmanager
def _cli_context(context: dict):
    """The context as the CDK CLI passes it to app.py (CDK_CONTEXT_JSON), for the build only."""
    saved = {name: os.environ.pop(name, None) for name in (CONTEXT_ENV, CONTEXT_OVERFLOW_ENV)}
    os.environ[CONTEXT_ENV] = json.dumps(context)
    try:
        yield
    finally:
        os.environ.pop(CONTEXT_ENV)
        os.environ.update({name: value for name, value in saved.items() if value is not None})


@pytest.fixture(scope="session")
def synth() -> Synth:
    return Synth()


@pytest.fixture(scope="session")
def app_synth() -> AppSynth:
    return AppSynth()


@pytest.fixture(scope="session")
def app_cfn(app_synth: AppSynth) -> dict:
    return app_synth.template.to_json()


@pytest.fixture(scope="session")
def template(synth: Synth) -> Template:
    return synth.template


@pytest.fixture(scope="session")
def cfn(template: Template) -> dict:
    return template.to_json()


@pytest.fixture(scope="session")
def domain_cfn(synth: Synth) -> dict:
    return synth.domain_template.to_json()


@pytest.fixture(scope="session")
def consumer_cfn(synth: Synth) -> dict:
    return synth.consumer_template.to_json()
