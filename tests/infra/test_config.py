"""infra.config: every mistake in the ``adsauth`` context is reported, all at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.config import (
    CLIENT_SECRET_REFUSED,
    KNOWN_KEYS,
    OPERATOR_NAME_PLACEHOLDER,
    OPERATOR_NAME_REQUIRED,
    SCHEMA_PATH,
    AdsAuthConfig,
    ConfigError,
    json_schema,
    load_config,
)
from infra.context import context_block

CLIENT_ID = "amzn1.application-oa2-client.0123456789abcdef0123456789abcdef"
CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/1234abcd-12ab-34cd-56ef-1234567890ab"
REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATOR = "Northwind Media"
REQUIRED = {"client_id": CLIENT_ID, "operator_name": OPERATOR}  # the keys without a default


def problems_of(raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    return caught.value.problems


def shipped_block() -> dict:
    """cdk.json's block as ops make it theirs: the operator's name in place of the placeholder."""
    raw = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["adsauth"]
    return {**raw, "operator_name": OPERATOR}


def test_cdk_json_context_is_complete_valid_and_documented():
    raw = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["adsauth"]
    assert set(raw) == set(KNOWN_KEYS), "cdk.json lists every key, so it is the one place to look"
    assert raw["operator_name"] == OPERATOR_NAME_PLACEHOLDER  # to replace: synth refuses it
    assert isinstance(load_config(shipped_block()), AdsAuthConfig)
    properties = json_schema()["properties"]
    assert set(properties) == set(KNOWN_KEYS)
    for key in KNOWN_KEYS:
        assert len(properties[key].get("description", "")) > 40, f"{key} is not documented"


def test_the_published_schema_is_the_models():
    committed = json.loads(SCHEMA_PATH.read_text())
    assert committed == json_schema(), "docs/cdk-json.schema.json is stale: run python -m infra.config"
    assert committed["additionalProperties"] is False
    assert committed["required"] == ["client_id", "operator_name"]
    reserved = committed["properties"]["callback_reserved_concurrency"]
    assert reserved["default"] is None
    assert {"type": "null"} in reserved["anyOf"]
    assert committed["properties"]["api_cloudwatch_role"]["enum"] == ["auto", "existing", "create"]


def test_the_schema_accepts_the_shipped_block_and_refuses_what_synth_refuses():
    import jsonschema  # schemathesis's dependency; editors and CI linters use the same standard

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    raw = shipped_block()
    assert list(validator.iter_errors(raw)) == []
    for mistake in (
        {"operator_name": OPERATOR_NAME_PLACEHOLDER},  # cdk.json as shipped
        {"operator_name": ""},
        {"operator_name": None},
        {"support_contact": "x" * 201},
        {"stage_name": None},
        {"callback_reserved_concurrency": 0},
        {"allowed_regions": ["NA", "US"]},
        {"invitation_ttl_days": "7"},
        {"regions": ["NA"]},
        {"api_cloudwatch_role": "always"},
    ):
        assert list(validator.iter_errors({**raw, **mistake})), mistake
        with pytest.raises(ConfigError):
            load_config({**raw, **mistake})


def test_minimal_config_takes_documented_defaults():
    config = load_config(REQUIRED)
    assert config == AdsAuthConfig(
        client_id=CLIENT_ID,
        operator_name=OPERATOR,
        scope="advertising::campaign_management",
        allowed_regions=("NA", "EU", "FE"),
        stage_name="prod",
        invitation_ttl_days=7,
        refresh_schedule_minutes=1,
        refresh_lead_minutes=12,
        refresh_concurrency=5,
        profile_refresh_hours=24,
        alert_email=None,
    )
    assert config.invitation_ttl_seconds == 7 * 86400
    assert config.refresh_lead_seconds == 12 * 60
    assert config.profile_refresh_seconds == 24 * 3600
    assert (config.grant_lifetime_days, config.grant_expiry_from) == (365, "2026-06-30")
    assert config.reconsent_lead_days == (30, 7, 1)


def test_grant_settings_accept_their_range_and_leads_come_largest_first():
    config = load_config(
        {
            **REQUIRED,
            "grant_lifetime_days": 3650,
            "grant_expiry_from": "2024-02-29",
            "reconsent_lead_days": [1, 3649, 60],
        }
    )
    assert config.grant_lifetime_days == 3650
    assert config.reconsent_lead_days == (3649, 60, 1)  # a tuple: frozen, hashable
    config = load_config({**REQUIRED, "grant_lifetime_days": 2, "reconsent_lead_days": [1]})
    assert config.reconsent_lead_days == (1,)


def test_full_config_with_custom_domain_and_sender():
    config = load_config(
        {
            **REQUIRED,
            "scope": "cpc_advertising:campaign_management",
            "allowed_regions": ["FE"],
            "callback_domain": "auth.example.com",
            "certificate_arn": CERT,
            "stage_name": "live_1",
            "invitation_ttl_days": 30,
            "ses_sender": "ops@example.com",
            "operator_name": "Acme Media",
            "support_contact": "https://acme.example/support?topic=ads",
            "footer_text": "Acme Media Ltd · 1 Example Road, London",
            "refresh_schedule_minutes": 15,
            "refresh_lead_minutes": 26,
            "refresh_concurrency": 50,
            "profile_refresh_hours": 168,
            "alert_email": "alerts+adsauth@example.com",
        }
    )
    assert config.allowed_regions == ("FE",)
    assert config.callback_domain == "auth.example.com"
    assert config.refresh_lead_seconds == 26 * 60
    assert config.alert_email == "alerts+adsauth@example.com"


@pytest.mark.parametrize(
    "schedule, lead", [(1, 12), (1, 29), (2, 13), (5, 16), (15, 26), (15, 29)]
)
def test_refresh_lead_leaves_downstream_ten_minutes(schedule, lead):
    config = load_config(
        {**REQUIRED, "refresh_schedule_minutes": schedule, "refresh_lead_minutes": lead}
    )
    # Worst case: just missed a dispatch, waits a full interval, then a minute to refresh.
    assert config.refresh_lead_minutes - config.refresh_schedule_minutes - 1 >= 10


def test_the_longest_lead_is_one_the_functions_accept():
    from adsauth.settings import settings_from_env

    config = load_config({**REQUIRED, "refresh_lead_minutes": 29})
    env = {
        "TABLE_NAME": "t",
        "PUBLIC_BASE_URL": "https://example.com",
        "LWA_CLIENT_ID": CLIENT_ID,
        "LWA_CLIENT_SECRET_NAME": "n",
        "SECRET_PREFIX": "p/",
        "REFRESH_LEAD_SECONDS": str(config.refresh_lead_seconds),
    }
    assert settings_from_env(env).refresh_lead_seconds == 29 * 60


def test_hardening_keys_take_documented_defaults_and_accept_their_range():
    config = load_config(REQUIRED)
    assert (config.api_throttle_rate_limit, config.api_throttle_burst_limit) == (50, 100)
    assert config.callback_reserved_concurrency is None  # a new account's quota of 10 allows none
    assert (config.api_cloudwatch_role, config.table_deletion_protection) == ("auto", False)
    assert (config.waf_enabled, config.waf_rate_limit) == (False, 300)
    assert config.operator_principal_arns == ()
    config = load_config(
        {
            **REQUIRED,
            "api_throttle_rate_limit": 1,
            "api_throttle_burst_limit": 5000,
            "callback_reserved_concurrency": 10,
            "waf_enabled": True,
            "waf_rate_limit": 100,
            "operator_principal_arns": [
                "arn:aws:iam::123456789012:role/AdsAuthOps",
                "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Ops_*",
                "arn:aws-cn:iam::123456789012:user/ops",
            ],
        }
    )
    assert config.callback_reserved_concurrency == 10
    assert config.waf_enabled is True
    assert isinstance(config.operator_principal_arns, tuple)  # frozen, hashable
    assert len(config.operator_principal_arns) == 3


def test_a_slower_schedule_needs_a_longer_lead():
    (problem,) = problems_of({**REQUIRED, "refresh_schedule_minutes": 5})
    assert problem.startswith(
        "refresh_lead_minutes must be at least 16 (10 + refresh_schedule_minutes 5 + 1)"
    )
    assert "downstream must still find 10 minutes left; got 12" in problem


def test_ses_sender_may_be_an_email_or_a_domain():
    config = load_config({**REQUIRED, "ses_sender": "ops@example.com"})
    assert (config.ses_sender, config.from_address) == ("ops@example.com", "ops@example.com")
    config = load_config(
        {**REQUIRED, "ses_sender": "ops@example.com", "ses_from_address": "ops@example.com"}
    )
    assert config.from_address == "ops@example.com"
    for domain, address in [
        ("example.com", "adsauth@example.com"),
        ("example.com", "adsauth@mail.example.com"),  # a verified domain covers its subdomains
        ("mail.example.co.uk", "noreply@mail.example.co.uk"),
    ]:
        config = load_config({**REQUIRED, "ses_sender": domain, "ses_from_address": address})
        assert (config.ses_sender, config.from_address) == (domain, address)
    assert load_config(REQUIRED).from_address is None


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            {"ses_sender": "example.com"},
            'ses_sender "example.com" is a domain: set ses_from_address to the address the e-mails '
            'come from, e.g. "adsauth@example.com" (SES needs an address as Source)',
        ),
        (
            {"ses_from_address": "adsauth@example.com"},
            "ses_from_address needs ses_sender (the verified SES identity it belongs to)",
        ),
        (
            {"ses_sender": "example.com", "ses_from_address": "adsauth@example.org"},
            "ses_from_address must be an address of ses_sender's domain \"example.com\" or of one "
            'of its subdomains (what a verified domain covers); got "adsauth@example.org"',
        ),
        (
            {"ses_sender": "example.com", "ses_from_address": "adsauth@badexample.com"},
            "ses_from_address must be an address of ses_sender's domain",
        ),
        (
            {"ses_sender": "ops@example.com", "ses_from_address": "other@example.com"},
            "ses_from_address must be ses_sender itself when ses_sender is an address",
        ),
        ({"ses_sender": "example.com", "ses_from_address": "example.com"}, "ses_from_address must be an email address"),
    ],
)
def test_ses_from_address_rules(overrides, expected):
    (problem,) = problems_of({**REQUIRED, **overrides})
    assert expected in problem


@pytest.mark.parametrize(
    "key, default",
    [("stage_name", '"prod"'), ("refresh_concurrency", "5"), ("waf_enabled", "false"),
     ("allowed_regions", '["NA", "EU", "FE"]'), ("api_cloudwatch_role", '"auto"')],
)
def test_a_null_where_null_is_not_allowed_says_so(key, default):
    (problem,) = problems_of({**REQUIRED, key: None})
    assert problem.startswith(f"{key} must ")
    assert problem.endswith(
        f"; got null (null is not allowed here; leave the key out for the default, {default})"
    )


@pytest.mark.parametrize("key", ["callback_reserved_concurrency", "ses_sender", "alert_email",
                                 "callback_domain", "support_contact", "footer_text"])
def test_an_explicit_null_is_the_nullable_keys_none(key):
    assert getattr(load_config({**REQUIRED, key: None}), key) is None


def test_api_cloudwatch_role_is_auto_existing_or_create():
    for choice in ("auto", "existing", "create"):
        assert load_config({**REQUIRED, "api_cloudwatch_role": choice}).api_cloudwatch_role == choice
    (problem,) = problems_of({**REQUIRED, "api_cloudwatch_role": "always"})
    assert problem.startswith('api_cloudwatch_role must be "auto"')


class _App:
    """What context_block falls back to: App.node.try_get_context (nulls already dropped)."""

    def __init__(self, context):
        self.node = self
        self._context = context

    def try_get_context(self, key):
        return self._context.get(key)


def test_context_block_reads_what_the_cli_passes_nulls_intact(monkeypatch, tmp_path):
    block = {**REQUIRED, "callback_reserved_concurrency": None}
    monkeypatch.delenv("CONTEXT_OVERFLOW_LOCATION_ENV", raising=False)
    monkeypatch.setenv("CDK_CONTEXT_JSON", json.dumps({"adsauth": block, "flag": True}))
    app = _App({"adsauth": REQUIRED})  # as jsii hands it over: the null is gone
    assert context_block(app) == block
    # A large context: the CLI moves top-level keys to the overflow file, which wins.
    overflow = tmp_path / "context-overflow.json"
    overflow.write_text(json.dumps({"adsauth": {**block, "stage_name": "live"}}))
    monkeypatch.setenv("CONTEXT_OVERFLOW_LOCATION_ENV", str(overflow))
    monkeypatch.setenv("CDK_CONTEXT_JSON", json.dumps({"flag": True}))
    assert context_block(app) == {**block, "stage_name": "live"}
    # No CLI (an App built with context=): the App's context.
    monkeypatch.delenv("CONTEXT_OVERFLOW_LOCATION_ENV")
    monkeypatch.delenv("CDK_CONTEXT_JSON")
    assert context_block(app) == REQUIRED


def test_context_may_be_a_json_string():
    assert load_config(json.dumps(REQUIRED)).client_id == CLIENT_ID


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"client_id": "amzn1.application-oa2-client."}, "client_id must look like"),
        ({"client_id": "my-client"}, "client_id must look like"),
        ({"scope": "advertising::everything"}, "scope must be one of"),
        ({"allowed_regions": []}, "allowed_regions must be a non-empty list"),
        ({"allowed_regions": "NA"}, "allowed_regions must be a non-empty list"),
        ({"allowed_regions": ["NA", "US"]}, "allowed_regions may only contain NA, EU, FE"),
        ({"allowed_regions": ["NA", "NA"]}, 'allowed_regions lists ["NA"] more than once'),
        (
            {"callback_domain": "https://auth.example.com", "certificate_arn": CERT},
            "callback_domain must be a bare hostname",
        ),
        (
            {"callback_domain": "auth.example.com/path", "certificate_arn": CERT},
            "callback_domain must be a bare hostname",
        ),
        ({"callback_domain": "auth.example.com"}, "callback_domain needs certificate_arn"),
        (
            {"callback_domain": "auth.example.com", "certificate_arn": "arn:aws:iam::1:cert/x"},
            "certificate_arn must be an ACM certificate ARN",
        ),
        ({"certificate_arn": CERT}, "certificate_arn is only used with callback_domain"),
        ({"stage_name": "prod-1"}, "stage_name must match"),
        ({"stage_name": ""}, "stage_name must match"),
        ({"invitation_ttl_days": 0}, "invitation_ttl_days must be an integer from 1 to 30"),
        ({"invitation_ttl_days": 31}, "invitation_ttl_days must be an integer from 1 to 30"),
        ({"invitation_ttl_days": "7"}, "invitation_ttl_days must be an integer from 1 to 30"),
        ({"invitation_ttl_days": True}, "invitation_ttl_days must be an integer from 1 to 30"),
        ({"ses_sender": "not an address"}, "ses_sender must be a verified SES identity"),
        ({"ses_sender": "ops@"}, "ses_sender must be a verified SES identity"),
        ({"operator_name": ""}, "operator_name must be one line of plain text (no < or >) of at most 100"),
        ({"stage": "prod"}, "unknown key(s) stage"),
        ({"refresh_schedule_minutes": 0}, "refresh_schedule_minutes must be an integer from 1 to 15"),
        ({"refresh_schedule_minutes": 16}, "refresh_schedule_minutes must be an integer from 1 to 15"),
        ({"refresh_schedule_minutes": "1"}, "refresh_schedule_minutes must be an integer from 1 to 15"),
        ({"refresh_schedule_minutes": True}, "refresh_schedule_minutes must be an integer from 1 to 15"),
        ({"refresh_lead_minutes": 11}, "refresh_lead_minutes must be at least 12"),
        ({"refresh_lead_minutes": 5}, "refresh_lead_minutes must be at least 12"),
        (
            {"refresh_schedule_minutes": 3, "refresh_lead_minutes": 13},
            "refresh_lead_minutes must be at least 14",
        ),
        ({"refresh_lead_minutes": 30}, "refresh_lead_minutes must be at most 29"),
        ({"refresh_lead_minutes": "12"}, "refresh_lead_minutes must be an integer"),
        ({"refresh_lead_minutes": 12.5}, "refresh_lead_minutes must be an integer"),
        (
            {"refresh_concurrency": 1},
            "refresh_concurrency must be an integer from 2 to 50 (the SQS event source's "
            "maximum concurrency cannot be below 2)",
        ),
        ({"refresh_concurrency": 51}, "refresh_concurrency must be an integer from 2 to 50"),
        ({"refresh_concurrency": 5.0}, "refresh_concurrency must be an integer from 2 to 50"),
        ({"profile_refresh_hours": 0}, "profile_refresh_hours must be an integer from 1 to 168"),
        ({"profile_refresh_hours": 169}, "profile_refresh_hours must be an integer from 1 to 168"),
        ({"profile_refresh_hours": None}, "profile_refresh_hours must be an integer from 1 to 168"),
        ({"alert_email": "ops"}, "alert_email must be an email address"),
        ({"alert_email": "ops@"}, "alert_email must be an email address"),
        ({"alert_email": "ops@localhost"}, "alert_email must be an email address"),
        ({"alert_email": ["ops@example.com"]}, "alert_email must be an email address"),
        ({"alert_email": ""}, "alert_email must be an email address"),
        ({"api_throttle_rate_limit": 0}, "api_throttle_rate_limit must be an integer from 1 to 10000"),
        ({"api_throttle_rate_limit": "50"}, "api_throttle_rate_limit must be an integer from 1 to 10000"),
        ({"api_throttle_burst_limit": 5001}, "api_throttle_burst_limit must be an integer from 1 to 5000"),
        (
            {"api_throttle_rate_limit": 100, "api_throttle_burst_limit": 50},
            "api_throttle_burst_limit (50) must be at least api_throttle_rate_limit (100)",
        ),
        ({"callback_reserved_concurrency": 0}, "callback_reserved_concurrency must be an integer from 1 to 1000 or null"),
        ({"callback_reserved_concurrency": 1001}, "callback_reserved_concurrency must be an integer from 1 to 1000 or null"),
        ({"callback_reserved_concurrency": True}, "callback_reserved_concurrency must be an integer"),
        ({"waf_enabled": "true"}, "waf_enabled must be true or false"),
        ({"waf_enabled": 1}, "waf_enabled must be true or false"),
        ({"waf_rate_limit": 99}, "waf_rate_limit must be an integer from 100 to 2000000000"),
        ({"waf_rate_limit": 300.0}, "waf_rate_limit must be an integer from 100 to 2000000000"),
        ({"operator_principal_arns": "arn:aws:iam::123456789012:role/Ops"}, "operator_principal_arns must be a list"),
        ({"operator_principal_arns": [1]}, "operator_principal_arns must be a list"),
        (
            {"operator_principal_arns": ["arn:aws:iam::123456789012:root"]},
            "operator_principal_arns may only hold IAM user or role ARNs",
        ),
        ({"operator_principal_arns": ["*"]}, "operator_principal_arns may only hold IAM user or role ARNs"),
        (
            {"operator_principal_arns": ["arn:aws:sts::123456789012:assumed-role/Ops/me"]},
            "operator_principal_arns may only hold IAM user or role ARNs",
        ),
        ({"grant_lifetime_days": 0}, "grant_lifetime_days must be an integer from 1 to 3650"),
        ({"grant_lifetime_days": 3651}, "grant_lifetime_days must be an integer from 1 to 3650"),
        ({"grant_lifetime_days": "365"}, "grant_lifetime_days must be an integer from 1 to 3650"),
        ({"grant_lifetime_days": True}, "grant_lifetime_days must be an integer from 1 to 3650"),
        ({"grant_expiry_from": "30.06.2026"}, "grant_expiry_from must be a date 'YYYY-MM-DD'"),
        ({"grant_expiry_from": "20260630"}, "grant_expiry_from must be a date 'YYYY-MM-DD'"),
        ({"grant_expiry_from": "2026-02-30"}, "grant_expiry_from must be a date 'YYYY-MM-DD'"),
        ({"grant_expiry_from": "2026-06-30T00:00"}, "grant_expiry_from must be a date 'YYYY-MM-DD'"),
        ({"grant_expiry_from": None}, "grant_expiry_from must be a date 'YYYY-MM-DD'"),
        ({"reconsent_lead_days": []}, "reconsent_lead_days must be a non-empty list of positive integers"),
        ({"reconsent_lead_days": 30}, "reconsent_lead_days must be a non-empty list of positive integers"),
        ({"reconsent_lead_days": [30, 0]}, "reconsent_lead_days must be a non-empty list of positive integers"),
        ({"reconsent_lead_days": [30, -7]}, "reconsent_lead_days must be a non-empty list of positive integers"),
        ({"reconsent_lead_days": [30, "7"]}, "reconsent_lead_days must be a non-empty list of positive integers"),
        ({"reconsent_lead_days": [30, True]}, "reconsent_lead_days must be a non-empty list of positive integers"),
        ({"reconsent_lead_days": [30, 7.5]}, "reconsent_lead_days must be a non-empty list of positive integers"),
        ({"reconsent_lead_days": [30, 7, 30]}, "reconsent_lead_days lists [30] more than once"),
        (
            {"reconsent_lead_days": [365, 30]},
            "reconsent_lead_days must each be less than grant_lifetime_days (365): an invitation "
            "that early would be due at or before consent; got [365]",
        ),
        (
            {"grant_lifetime_days": 20, "reconsent_lead_days": [30, 7, 1]},
            "reconsent_lead_days must each be less than grant_lifetime_days (20)",
        ),
    ],
)
def test_each_mistake_has_its_message(overrides, expected):
    problems = problems_of({**REQUIRED, **overrides})
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_all_mistakes_are_reported_together():
    with pytest.raises(ConfigError) as caught:
        load_config(
            {
                "client_id": "nope",
                "operator_name": OPERATOR,
                "scope": "x",
                "allowed_regions": ["XX"],
                "stage_name": "a b",
                "invitation_ttl_days": 99,
                "regions": ["NA"],
            }
        )
    problems = caught.value.problems
    for fragment in (
        "client_id",
        "scope",
        "allowed_regions",
        "stage_name",
        "invitation_ttl_days",
        "unknown key(s) regions",
    ):
        assert any(fragment in p for p in problems), (fragment, problems)
    assert len(problems) == 6
    assert all(p in str(caught.value) for p in problems)


def test_missing_required_keys_are_reported():
    assert problems_of({}) == [
        "client_id is required (the client id of your LwA security profile)",
        OPERATOR_NAME_REQUIRED,
    ]


@pytest.mark.parametrize("key", ["client_secret", "lwa_client_secret", "clientSecret"])
def test_a_client_secret_is_refused_and_never_echoed(key):
    value = "amzn1.oa2-cs.v1.supersecretvalue"
    with pytest.raises(ConfigError) as caught:
        load_config({**REQUIRED, key: value})
    assert caught.value.problems == [CLIENT_SECRET_REFUSED]
    assert CLIENT_SECRET_REFUSED == (
        "the client secret never goes in cdk.json; put it in Secrets Manager, see README"
    )
    assert value not in str(caught.value)


@pytest.mark.parametrize("raw", [None, ["client_id"], "not json"])
def test_missing_or_malformed_context_is_an_error(raw):
    assert problems_of(raw)


# --- branding: who advertisers are told they deal with ------------------------------------------
@pytest.mark.parametrize("placeholder", [OPERATOR_NAME_PLACEHOLDER, "replace with your company name",
                                         "Example Agency", " your agency "])
def test_the_shipped_or_old_placeholder_operator_name_is_refused(placeholder):
    assert problems_of({**REQUIRED, "operator_name": placeholder}) == [
        f"{OPERATOR_NAME_REQUIRED}; cdk.json still holds the placeholder {json.dumps(placeholder)}: "
        "replace it with the name advertisers know you by"
    ]


def test_a_missing_or_null_operator_name_is_refused():
    assert problems_of({"client_id": CLIENT_ID}) == [OPERATOR_NAME_REQUIRED]
    assert problems_of({"client_id": CLIENT_ID, "operator_name": None}) == [f"{OPERATOR_NAME_REQUIRED}; got null"]


@pytest.mark.parametrize("name", ["A", "Acme Media", "Müller & Söhne GmbH", "O'Brien \"Ads\" Co.", "x" * 100])
def test_an_operator_name_is_one_line_of_plain_text(name):
    assert load_config({**REQUIRED, "operator_name": name}).operator_name == name


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "Evil <script>", "Acme\nBcc: x@y.example", "Acme\t", 7,
                                  "Acme \u202eknab", "Acme\u2028Bcc: x@y.example"])
def test_an_operator_name_with_markup_or_lines_is_refused(name):
    assert problems_of({**REQUIRED, "operator_name": name}) == [
        "operator_name must be one line of plain text (no < or >) of at most 100 characters, your agency's or "
        f"company's name; got {json.dumps(name)}"
    ]


@pytest.mark.parametrize("contact", ["support@acme.example", "ads.help+adsauth@mail.acme.co.uk",
                                     "https://acme.example", "https://acme.example/support",
                                     "https://help.acme.example/ads?lang=en&topic=connect"])
def test_support_contact_is_an_address_or_an_https_url(contact):
    assert load_config({**REQUIRED, "support_contact": contact}).support_contact == contact


SUPPORT_CONTACT_PROBLEM = (
    "support_contact must be an e-mail address like 'support@example.com' or an https:// URL like "
    "'https://example.com/support' (no credentials, port or fragment), at most 200 characters; got "
)


@pytest.mark.parametrize("contact", [
    "", "support", "http://acme.example/support", "javascript:alert(1)", "mailto:support@acme.example",
    "https://user:pw@acme.example/", "https://acme.example:8443/", "https://acme.example/#top",
    'https://acme.example/"><script>', "https://acme.example/ support", "Support <support@acme.example>",
    "support@acme", "HTTPS://ACME.EXAMPLE", "https://" + "a" * 190 + ".example", ["support@acme.example"],
])
def test_support_contact_refuses_anything_else_with_one_fixed_message(contact):
    assert problems_of({**REQUIRED, "support_contact": contact}) == [SUPPORT_CONTACT_PROBLEM + json.dumps(contact)]


@pytest.mark.parametrize("footer", ["Acme Media Ltd · Registered in England, no. 01234567", "©", "x" * 200])
def test_footer_text_is_one_line_of_plain_text(footer):
    assert load_config({**REQUIRED, "footer_text": footer}).footer_text == footer


@pytest.mark.parametrize("footer", ["", " ", "x" * 201, "<b>Acme</b>", "Line one\nLine two", 3])
def test_footer_text_with_markup_or_lines_is_refused(footer):
    assert problems_of({**REQUIRED, "footer_text": footer}) == [
        f"footer_text must be one line of plain text (no < or >) of at most 200 characters; got {json.dumps(footer)}"
    ]


def test_what_synth_accepts_the_functions_accept():
    """The functions parse the same variables with the same rules (adsauth.settings)."""
    from infra.environment import function_environment
    from tests.unit.fakes import make_settings

    config = load_config({**REQUIRED, "support_contact": "https://acme.example/help?x=1",
                          "footer_text": "Acme & Co · \"quoted\""})

    class Storage:  # what function_environment reads of infra.storage.Storage
        class table:
            table_name = "t"

        class client_secret:
            secret_arn = "arn"

        secret_prefix = "p/"

    env = function_environment(config, Storage, "https://auth.example.com")
    assert (env["OPERATOR_NAME"], env["SUPPORT_CONTACT"], env["FOOTER_TEXT"]) == (
        OPERATOR, "https://acme.example/help?x=1", "Acme & Co · \"quoted\"")
    branding = make_settings(**{k: env[k] for k in ("OPERATOR_NAME", "SUPPORT_CONTACT", "FOOTER_TEXT")}).branding
    assert (branding.operator_name, branding.support_contact, branding.footer_text) == (
        OPERATOR, "https://acme.example/help?x=1", "Acme & Co · \"quoted\"")
    assert "SUPPORT_CONTACT" not in function_environment(load_config(REQUIRED), Storage, "https://a.example")


@pytest.mark.parametrize("change, problem", [
    ({}, f'{OPERATOR_NAME_REQUIRED}; cdk.json still holds the placeholder "{OPERATOR_NAME_PLACEHOLDER}": '
         "replace it with the name advertisers know you by"),
    ({"operator_name": None}, f"{OPERATOR_NAME_REQUIRED}; got null"),
    ({"operator_name": ...}, OPERATOR_NAME_REQUIRED),
])
def test_the_app_refuses_to_synthesize_without_the_operators_name(change, problem, monkeypatch):
    """cdk.json as shipped, the name removed or null: the app's build (what `cdk synth` runs)
    raises the one problem."""
    import app as cdk_app
    from aws_cdk import App

    raw = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["adsauth"]
    block = {k: v for k, v in {**raw, **change}.items() if v is not ...}
    monkeypatch.delenv("CONTEXT_OVERFLOW_LOCATION_ENV", raising=False)
    monkeypatch.setenv("CDK_CONTEXT_JSON", json.dumps({"adsauth": block}))  # as the CLI passes it
    with pytest.raises(ConfigError) as caught:
        cdk_app.build(App(context={"adsauth": block}))
    assert caught.value.problems == [problem]


def test_app_py_exits_1_on_the_shipped_placeholder_with_the_clear_error(tmp_path):
    import os
    import subprocess
    import sys

    flags = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    env = {k: v for k, v in os.environ.items() if k != "CONTEXT_OVERFLOW_LOCATION_ENV"}
    env.update(CDK_CONTEXT_JSON=json.dumps(flags), CDK_OUTDIR=str(tmp_path / "cdk.out"),
               JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1")
    result = subprocess.run([sys.executable, str(REPO_ROOT / "app.py")], env=env, capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert (
        "invalid cdk.json context 'adsauth':\n"
        f'  - {OPERATOR_NAME_REQUIRED}; cdk.json still holds the placeholder "{OPERATOR_NAME_PLACEHOLDER}": '
        "replace it with the name advertisers know you by\n"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("cdk.out/*.template.json"))  # nothing to deploy
