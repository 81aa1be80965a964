"""Deployment configuration: the ``adsauth`` context key in ``cdk.json``, the one documented place.

Each key is documented at its field of ``AdsAuthConfig`` below (JSON has no comments); the same
text, with types, ranges and defaults, is published as a JSON Schema in
``docs/cdk-json.schema.json`` (regenerate it with ``python -m infra.config``).

app.py reads the block as the CDK CLI hands it over (``infra.context.context_block``): the JSON
in ``CDK_CONTEXT_JSON`` and the overflow file named by ``CONTEXT_OVERFLOW_LOCATION_ENV``, not
``App.node.try_get_context``, because jsii drops the keys whose value is ``null`` from context
objects, and an explicit ``null`` (say ``"stage_name": null``) would silently become the default.

The LwA client *secret* never goes here: it lives in Secrets Manager (see README, Deploy). A key that
looks like a secret is refused, as is any unknown key (typos would otherwise be silently ignored).
Validation runs only at synth (pydantic), so it costs the functions nothing.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from infra.config_rules import (
    MAX_REFRESH_LEAD_MINUTES,
    MIN_DOWNSTREAM_MINUTES,
    cross_key_problems,
)
from infra.config_rules import shown as _shown

from adsauth.settings import (  # the functions check with the same rules
    FOOTER_TEXT_MAX,
    OPERATOR_NAME_MAX,
    SUPPORT_CONTACT_MAX,
    is_plain_text,
    is_support_contact,
)

SCOPES = (
    "advertising::campaign_management",
    "advertising::audiences",
    "cpc_advertising:campaign_management",
)
REGIONS = ("NA", "EU", "FE")
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "cdk-json.schema.json"

CLIENT_SECRET_REFUSED = (
    "the client secret never goes in cdk.json; put it in Secrets Manager, see README"
)
CLIENT_ID_PROBLEM = (
    "client_id must look like 'amzn1.application-oa2-client.<letters and digits>' "
    "(the client id of your LwA security profile)"
)

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST = rf"{_LABEL}(?:\.{_LABEL})+"
HOSTNAME_PATTERN = rf"^(?=.{{1,253}}$){_HOST}$"
EMAIL_PATTERN = rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@(?=.{{1,253}}$){_HOST}$"
# What cdk.json ships for operator_name, and names that were shipped or defaulted before: each
# would greet advertisers with a name that is not the operator's, so synth refuses them.
OPERATOR_NAME_PLACEHOLDER = "REPLACE WITH YOUR COMPANY NAME"
PLACEHOLDER_OPERATOR_NAMES = frozenset({OPERATOR_NAME_PLACEHOLDER.casefold(), "example agency", "your agency"})
OPERATOR_NAME_REQUIRED = (
    "operator_name is required: the name advertisers see on every page and e-mail (your agency's "
    "or company's name)"
)
CLIENT_ID_PATTERN = r"^amzn1\.application-oa2-client\.[A-Za-z0-9]+$"
ACM_ARN_PATTERN = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$"
STAGE_PATTERN = r"^[A-Za-z0-9_]+$"
ISO_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"  # date.fromisoformat alone accepts 20260630 too
# An IAM user or role (optionally under a path); '*' and '?' may stand for parts of the name.
PRINCIPAL_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/*?-]+$"
SES_IDENTITY_PATTERN = rf"^(?:[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@)?(?=.{{1,253}}$){_HOST}$"

class ConfigError(ValueError):
    """The ``adsauth`` context is wrong; ``problems`` lists every mistake found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            "invalid cdk.json context 'adsauth':\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


class AdsAuthConfig(BaseModel):
    """The ``adsauth`` block of cdk.json's context: how one adsauth deployment behaves."""

    model_config = ConfigDict(
        strict=True,  # JSON types as written: "7" is not 7, true is not 1
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        regex_engine="python-re",  # the hostname patterns need look-arounds
        title="adsauth",
    )

    client_id: str = Field(pattern=CLIENT_ID_PATTERN)
    """Required. The LwA security profile's client id, ``amzn1.application-oa2-client.<alnum>``.
    Not a secret."""
    scope: Literal[SCOPES] = SCOPES[0]  # type: ignore[valid-type]
    """The LwA scope requested: ``advertising::campaign_management`` (default),
    ``advertising::audiences`` (Data Provider API) or the legacy
    ``cpc_advertising:campaign_management`` (clients approved before October 2020)."""
    allowed_regions: tuple[str, ...] = Field(
        default=REGIONS,
        strict=False,  # a JSON array
        min_length=1,
        json_schema_extra={"items": {"type": "string", "enum": list(REGIONS)}, "uniqueItems": True},
    )
    """Regions an invitation may name: a non-empty list drawn from ``NA``, ``EU``, ``FE``, no
    duplicates. Default: all three."""
    callback_domain: str | None = Field(default=None, pattern=HOSTNAME_PATTERN)
    """Optional custom domain for the public API, a bare hostname such as ``auth.example.com`` (no
    scheme, path or port). When set, the callback URL is ``https://<callback_domain>/callback`` and
    ``certificate_arn`` is required. ``null`` (default) uses the execute-api URL of the stage."""
    certificate_arn: str | None = Field(default=None, pattern=ACM_ARN_PATTERN)
    """ACM certificate for ``callback_domain``, in the stack's region (regional endpoint). Only
    allowed together with ``callback_domain``."""
    stage_name: str = Field(default="prod", pattern=STAGE_PATTERN)
    """API Gateway stage name (``^[A-Za-z0-9_]+$``), part of the execute-api callback URL.
    Default ``prod``."""
    invitation_ttl_days: int = Field(default=7, ge=1, le=30)
    """How long an invitation link stays valid, an integer from 1 to 30. Default 7."""
    ses_sender: str | None = Field(default=None, pattern=SES_IDENTITY_PATTERN)
    """Optional verified SES identity (an email address or a domain) in the stack's region. When
    set, the ops CLI may email invitations and the refresh worker emails re-consent invitations,
    from ``ses_from_address``. Default ``null``: the CLI prints the link instead. While the account
    is in the SES sandbox, mail reaches verified recipients only (see docs/runbook.md, Prerequisites)."""
    ses_from_address: str | None = Field(default=None, pattern=EMAIL_PATTERN)
    """The address the e-mails come from (SES needs an address as ``Source``). Required when
    ``ses_sender`` is a domain, and then an address of that domain or of one of its subdomains
    (a verified domain covers both); when ``ses_sender`` is an address it defaults to it and may
    only be that address. Refused without ``ses_sender``. Default ``null``."""
    operator_name: str = Field(
        max_length=OPERATOR_NAME_MAX,
        json_schema_extra={"minLength": 1, "not": {"enum": [OPERATOR_NAME_PLACEHOLDER]}},
    )
    """Required. Who advertisers are dealing with, as every page and e-mail names it ("Acme Media
    asks you to connect your Amazon Ads account"): your agency's or company's name, one line of
    plain text (no ``<`` or ``>``), at most 100 characters. cdk.json ships a placeholder, which
    synth refuses."""
    support_contact: str | None = Field(default=None, max_length=SUPPORT_CONTACT_MAX)
    """Optional contact shown to advertisers on every page and in every e-mail ("Questions?
    Contact <operator_name>: ..."): an e-mail address (a ``mailto:`` link) or an ``https://`` URL
    (no credentials, port or fragment), at most 200 characters. Default ``null``: no contact
    line."""
    footer_text: str | None = Field(default=None, max_length=FOOTER_TEXT_MAX)
    """Optional footer line of every page and e-mail, one line of plain text (no ``<`` or ``>``; it
    is shown as written, never as markup), at most 200 characters. Default ``null``:
    ``<operator_name> · Amazon Ads account connection``."""
    refresh_schedule_minutes: int = Field(default=1, ge=1, le=15)
    """How often the refresh dispatcher runs (EventBridge ``rate(N minutes)``), an integer from 1
    to 15. Default 1."""
    refresh_lead_minutes: int = Field(
        default=12, le=MAX_REFRESH_LEAD_MINUTES, json_schema_extra={"minimum": MIN_DOWNSTREAM_MINUTES + 2}
    )
    """An access token is refreshed once it has fewer than this many minutes left. Default 12. It
    must be at least ``10 + refresh_schedule_minutes + 1``: a token that just misses one dispatch
    is picked up by the next, ``refresh_schedule_minutes`` later, and refreshed within about a
    minute, so downstream always finds at least 10 minutes left. At most 29: an access token
    lives 60 minutes, and a lead of half of that or more would refresh tokens nowhere near
    expiry."""
    refresh_concurrency: int = Field(default=5, ge=2, le=50)
    """At most this many refresh workers run at once (the SQS event source's maximum
    concurrency), an integer from 2 (the SQS minimum) to 50. Default 5. Each worker refreshes its
    batch of 10 at once, so at most 10 × this many calls reach LwA in parallel."""
    profile_refresh_hours: int = Field(default=24, ge=1, le=168)
    """How often an advertiser's profiles are listed again by the refresher, an integer from 1 to
    168 (a week). Default 24."""
    alert_email: str | None = Field(default=None, pattern=EMAIL_PATTERN)
    """Optional email address subscribed to the alert topic (refresh failures, advertisers that
    need to authorize again, the DLQ alarm). The address must confirm the subscription. Default
    ``null``: subscribe to the ``AlertTopicArn`` output yourself."""
    api_throttle_rate_limit: int = Field(default=50, ge=1, le=10000)
    """Steady-state requests per second the API stage accepts (all routes together), an integer
    from 1 to 10000. Default 50. The browser flow makes three requests per advertiser; this only
    keeps a misbehaving client from running up Lambda and LwA calls."""
    api_throttle_burst_limit: int = Field(default=100, ge=1, le=5000)
    """Requests the stage accepts in a burst above the rate, an integer from 1 to 5000 and at
    least ``api_throttle_rate_limit``. Default 100."""
    callback_reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)
    """Reserved concurrency of the callback function, the only API function that calls LwA (code
    exchange): an integer from 1 to 1000, or ``null`` (default) for none. A reservation caps the
    parallel code exchanges however many callbacks arrive and guarantees the callback that
    capacity, but the account must keep 100 unreserved executions after all reservations: a new
    account's quota of 10 allows none (see docs/runbook.md, Prerequisites)."""
    waf_enabled: bool = False
    """``true`` puts an AWS WAF web ACL in front of the API stage: the AWS managed common rule set
    and a per-IP rate limit (``waf_rate_limit``). Default ``false`` (WAF is billed per ACL, rule
    and request); the stage throttling and single-use invitation tokens and states apply either
    way."""
    waf_rate_limit: int = Field(default=300, ge=100, le=2_000_000_000)
    """With ``waf_enabled``, requests one IP address may make in any 5 minutes before WAF blocks
    it, an integer from 100 to 2000000000. Default 300."""
    api_cloudwatch_role: Literal["auto", "existing", "create"] = "auto"
    """API Gateway writes the stage's access and execution logs with ONE role per account and
    region (``AWS::ApiGateway::Account``), shared by every API there. ``"auto"`` (default): at
    deploy time a custom resource sets this stack's role only when the account has none (a new
    account) and never replaces one; the setting is left alone when the stack goes.
    ``"existing"`` leaves the setting alone: the account must already have a role set (``aws
    apigateway get-account``), or the first deploy fails on the stage and rolls back.
    ``"create"`` makes the stack create a role and set it for the whole region, replacing
    whatever was set (see docs/runbook.md, Prerequisites)."""
    token_layout: Literal["packed", "per_advertiser"] = "packed"
    """Where advertisers' tokens live in Secrets Manager. ``"packed"`` (default): many advertisers
    share one refresh-token secret and one access-token secret (a pack of up to 100), refreshed
    together about every 48 minutes: a few secrets per hundred advertisers instead of two per
    advertiser. ``"per_advertiser"``: two secrets per advertiser, as before. Changing it on a
    running stack: deploy, then ``adsauth migrate-layout --to <layout>`` (see docs/runbook.md);
    downstream reads keep working throughout."""
    table_deletion_protection: bool = False
    """DynamoDB deletion protection on the table. Default ``false``: CloudFormation cannot delete
    a protected table, so a failed first deploy could not roll back cleanly. The table is retained
    on stack deletion and replacement either way (``RetainExceptOnCreate``); set ``true`` after the
    first successful deploy to also refuse ``DeleteTable`` from anyone (see docs/runbook.md)."""
    operator_principal_arns: tuple[Annotated[str, Field(pattern=PRINCIPAL_ARN_PATTERN)], ...] = Field(
        default=(), strict=False  # a JSON array (of strict strings)
    )
    """IAM principal ARNs (``*`` allowed, e.g. an SSO permission-set role pattern) that may read
    the LwA client secret and the refresh-token secrets besides the callback and refresh worker
    roles and the account root: whoever runs ``adsauth refresh`` from a workstation.
    Default ``[]``. Everyone else is denied by the secrets' resource policies (see
    docs/runbook.md)."""
    grant_lifetime_days: int = Field(default=365, ge=1, le=3650)
    """How long an advertiser's Amazon Ads grant lasts after consent, an integer from 1 to 3650.
    Default 365."""
    grant_expiry_from: str = Field(
        default="2026-06-30", pattern=ISO_DATE_PATTERN, json_schema_extra={"format": "date"}
    )
    """A date ``YYYY-MM-DD``: refresh tokens issued on or after it expire ``grant_lifetime_days``
    after consent (earlier ones do not expire). Default ``2026-06-30``."""
    reconsent_lead_days: tuple[int, ...] = Field(
        default=(30, 7, 1),
        strict=False,  # a JSON array (of strict integers)
        min_length=1,
        json_schema_extra={"items": {"type": "integer", "minimum": 1}, "uniqueItems": True},
    )
    """How many days before a grant ends the advertiser is invited to consent again: a non-empty
    list of distinct positive integers, each less than ``grant_lifetime_days``, in any order
    (passed on largest first). Default ``[30, 7, 1]``."""

    @field_validator("*", mode="wrap")
    @classmethod
    def _one_readable_problem_per_key(cls, value: Any, handler: Callable, info) -> Any:
        # pydantic's own messages name types ("Input should be a valid integer"); ops read
        # cdk.json, so each key gets one sentence that says what it must be.
        try:
            value = handler(value)
        except ValidationError:
            raise PydanticCustomError("adsauth", _rejected(info.field_name, value)) from None
        check = _FIELD_CHECKS.get(info.field_name)
        return check(value) if check else value

    @model_validator(mode="after")
    def _keys_agree(self) -> AdsAuthConfig:
        problems = cross_key_problems(self.model_dump(), failed=set())
        if problems:
            raise PydanticCustomError("adsauth", "; ".join(problems))
        return self

    @property
    def invitation_ttl_seconds(self) -> int:
        return self.invitation_ttl_days * 24 * 3600

    @property
    def refresh_lead_seconds(self) -> int:
        return self.refresh_lead_minutes * 60

    @property
    def profile_refresh_seconds(self) -> int:
        return self.profile_refresh_hours * 3600

    @property
    def is_placeholder_client(self) -> bool:
        """True while cdk.json still holds the example client id."""
        return "EXAMPLE" in self.client_id

    @property
    def from_address(self) -> str | None:
        """The address SES e-mails are sent from (``SES_FROM_ADDRESS``), None without a sender."""
        if self.ses_from_address:
            return self.ses_from_address
        if self.ses_sender and "@" in self.ses_sender:
            return self.ses_sender
        return None

    @property
    def ses_sender_is_domain(self) -> bool:
        return bool(self.ses_sender) and "@" not in self.ses_sender


KNOWN_KEYS = tuple(AdsAuthConfig.model_fields)
REQUIRED_KEYS = tuple(key for key, field in AdsAuthConfig.model_fields.items() if field.is_required())
DEFAULTS = {key: field.default for key, field in AdsAuthConfig.model_fields.items() if key not in REQUIRED_KEYS}


def _int_range(low: int, high: int, why: str = "") -> str:
    return f"be an integer from {low} to {high}{why}"


def _lead_rejected(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return (
            f"be at most {MAX_REFRESH_LEAD_MINUTES}: an access token lives 60 minutes, a lead of "
            "half of that or more refreshes tokens far from expiry"
        )
    return "be an integer (minutes)"


def _operators_rejected(value: Any) -> str:
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return (
            "may only hold IAM user or role ARNs of this account like "
            "'arn:aws:iam::123456789012:role/AdsAuthOps' ('*' allowed in the name)"
        )
    return "be a list of IAM principal ARNs (e.g. ['arn:aws:iam::123456789012:role/AdsAuthOps'])"


# What each key must be, said once: the problem reads "<key> must <this>; got <value>" (or
# "<key> may only ...").
_EXPECTED: dict[str, str | Callable[[Any], str]] = {
    "scope": f"be one of {', '.join(SCOPES)}",
    "allowed_regions": "be a non-empty list drawn from NA, EU, FE",
    "callback_domain": "be a bare hostname like 'auth.example.com' (no scheme, path or port)",
    "certificate_arn": "be an ACM certificate ARN 'arn:aws:acm:<region>:<account>:certificate/<id>'",
    "stage_name": f"match {STAGE_PATTERN}",
    "invitation_ttl_days": _int_range(1, 30),
    "ses_sender": "be a verified SES identity (an email address or a domain)",
    "ses_from_address": "be an email address like 'adsauth@example.com' (the From of the e-mails)",
    "operator_name": "be one line of plain text (no < or >) of at most 100 characters, your agency's or company's name",
    "support_contact": (
        "be an e-mail address like 'support@example.com' or an https:// URL like "
        "'https://example.com/support' (no credentials, port or fragment), at most 200 characters"
    ),
    "footer_text": "be one line of plain text (no < or >) of at most 200 characters",
    "refresh_schedule_minutes": _int_range(1, 15),
    "refresh_lead_minutes": _lead_rejected,
    "refresh_concurrency": _int_range(
        2, 50, " (the SQS event source's maximum concurrency cannot be below 2)"
    ),
    "profile_refresh_hours": _int_range(1, 168, " (up to a week)"),
    "alert_email": "be an email address like 'ops@example.com'",
    "api_throttle_rate_limit": _int_range(1, 10000, " (requests per second)"),
    "api_throttle_burst_limit": _int_range(1, 5000, " (requests)"),
    "callback_reserved_concurrency": _int_range(1, 1000, " or null (no reservation)"),
    "waf_enabled": "be true or false",
    "waf_rate_limit": _int_range(100, 2_000_000_000, " (requests per IP address in 5 minutes)"),
    "api_cloudwatch_role": (
        'be "auto" (set a role only when the account has none), "existing" (leave the account\'s '
        'role alone) or "create" (replace it)'
    ),
    "token_layout": 'be "packed" (advertisers share secrets) or "per_advertiser" (two secrets each)',
    "table_deletion_protection": "be true or false",
    "operator_principal_arns": _operators_rejected,
    "grant_lifetime_days": _int_range(1, 3650, " (days)"),
    "grant_expiry_from": (
        "be a date 'YYYY-MM-DD' (refresh tokens issued on or after it expire grant_lifetime_days "
        "after consent)"
    ),
    "reconsent_lead_days": (
        "be a non-empty list of positive integers (days before a grant ends when the advertiser "
        "is invited to consent again), e.g. [30, 7, 1]"
    ),
}


def _rejected(key: str, value: Any) -> str:
    if key == "client_id":
        return CLIENT_ID_PROBLEM  # never echoed: a mistake here is sometimes a pasted secret
    if key == "operator_name" and value is None:
        return f"{OPERATOR_NAME_REQUIRED}; got null"
    expected = _EXPECTED[key]
    if callable(expected):
        expected = expected(value)
    verb = "" if expected.startswith("may ") else "must "
    problem = f"{key} {verb}{expected}; got {_shown(value)}"
    if value is None and key in DEFAULTS:
        problem += f" (null is not allowed here; leave the key out for the default, {_shown(DEFAULTS[key])})"
    return problem


def _check_regions(regions: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise PydanticCustomError(
            "adsauth", f"allowed_regions may only contain NA, EU, FE; got {_shown(unknown)}"
        )
    duplicates = sorted({r for r in regions if regions.count(r) > 1})
    if duplicates:
        raise PydanticCustomError("adsauth", f"allowed_regions lists {_shown(duplicates)} more than once")
    return regions


def _check_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:  # 2026-02-30
        raise PydanticCustomError("adsauth", _rejected("grant_expiry_from", value)) from None
    return value


def _check_leads(leads: tuple[int, ...]) -> tuple[int, ...]:
    if any(d < 1 for d in leads):
        raise PydanticCustomError("adsauth", _rejected("reconsent_lead_days", list(leads)))
    duplicates = sorted({d for d in leads if leads.count(d) > 1})
    if duplicates:
        raise PydanticCustomError(
            "adsauth", f"reconsent_lead_days lists {_shown(duplicates)} more than once"
        )
    return tuple(sorted(leads, reverse=True))


def _check_operator_name(value: str) -> str:
    if value.strip().casefold() in PLACEHOLDER_OPERATOR_NAMES:
        raise PydanticCustomError(
            "adsauth",
            f"{OPERATOR_NAME_REQUIRED}; cdk.json still holds the placeholder {_shown(value)}: "
            "replace it with the name advertisers know you by",
        )
    if not is_plain_text(value, OPERATOR_NAME_MAX):
        raise PydanticCustomError("adsauth", _rejected("operator_name", value))
    return value


def _check_support_contact(value: str | None) -> str | None:
    if value is not None and not is_support_contact(value):
        raise PydanticCustomError("adsauth", _rejected("support_contact", value))
    return value


def _check_footer_text(value: str | None) -> str | None:
    if value is not None and not is_plain_text(value, FOOTER_TEXT_MAX):
        raise PydanticCustomError("adsauth", _rejected("footer_text", value))
    return value


# Checks a JSON Schema keyword cannot say; they run once the type and range are right.
_FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "allowed_regions": _check_regions,
    "grant_expiry_from": _check_date,
    "reconsent_lead_days": _check_leads,
    "operator_name": _check_operator_name,
    "support_contact": _check_support_contact,
    "footer_text": _check_footer_text,
}


MISSING = {
    "client_id": "client_id is required (the client id of your LwA security profile)",
    "operator_name": OPERATOR_NAME_REQUIRED,
}


def _looks_like_secret(key: str) -> bool:
    lowered = key.lower()
    return "secret" in lowered or "password" in lowered


def load_config(raw: Mapping[str, Any] | str | None) -> AdsAuthConfig:
    """Validate the ``adsauth`` context and return it typed; raise ``ConfigError`` listing ALL
    problems. A JSON string is accepted too (``cdk synth -c adsauth='{...}'`` passes one)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(["context 'adsauth' given as a string must be a JSON object"]) from None
    if raw is None:
        raise ConfigError(["context 'adsauth' is missing from cdk.json (see infra/config.py)"])
    if not isinstance(raw, Mapping):
        raise ConfigError(["context 'adsauth' must be a JSON object (see infra/config.py)"])

    problems: list[str] = []
    if any(_looks_like_secret(str(k)) for k in raw):
        problems.append(CLIENT_SECRET_REFUSED)  # the value is never echoed
    unknown = sorted(str(k) for k in raw if k not in KNOWN_KEYS and not _looks_like_secret(str(k)))
    if unknown:
        problems.append(
            f"unknown key(s) {', '.join(unknown)}; known keys are {', '.join(KNOWN_KEYS)}"
        )
    known = {key: value for key, value in raw.items() if key in KNOWN_KEYS}

    config: AdsAuthConfig | None = None
    failed: set[str] = set()
    try:
        config = AdsAuthConfig.model_validate(known)
    except ValidationError as error:
        for detail in error.errors():
            if not detail["loc"]:
                continue  # the cross-key rules: recomputed below, with the valid keys only
            key = str(detail["loc"][0])
            failed.add(key)
            if detail["type"] == "missing":
                problems.append(MISSING[key])
            else:
                problems.append(detail["msg"])
        problems.extend(cross_key_problems({**DEFAULTS, **dict.fromkeys(REQUIRED_KEYS), **known}, failed))
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the ``adsauth`` block, as published in ``docs/cdk-json.schema.json``."""
    schema = AdsAuthConfig.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Generated from infra/config.py by `python -m infra.config`; do not edit.",
        **schema,
    }


def write_schema(path: Path = SCHEMA_PATH) -> None:
    path.write_text(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write_schema()
    print(f"wrote {SCHEMA_PATH}", file=sys.stderr)
