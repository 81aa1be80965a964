"""Deployment configuration: the ``adsauth`` context key in ``cdk.json``, the one documented place.

Keys (JSON has no comments, so they are documented here):

``client_id`` (required)
    The LwA security profile's client id, ``amzn1.application-oa2-client.<alnum>``. Not a secret.
``scope``
    The LwA scope requested: ``advertising::campaign_management`` (default),
    ``advertising::audiences`` (Data Provider API) or the legacy
    ``cpc_advertising:campaign_management`` (clients approved before October 2020).
``allowed_regions``
    Regions an invitation may name: a non-empty list drawn from ``NA``, ``EU``, ``FE``, no
    duplicates. Default: all three.
``callback_domain``
    Optional custom domain for the public API, a bare hostname such as ``auth.example.com`` (no
    scheme, path or port). When set, the callback URL is ``https://<callback_domain>/callback`` and
    ``certificate_arn`` is required. ``null`` (default) uses the execute-api URL of the stage.
``certificate_arn``
    ACM certificate for ``callback_domain``, in the stack's region (regional endpoint). Only
    allowed together with ``callback_domain``.
``stage_name``
    API Gateway stage name (``^[A-Za-z0-9_]+$``), part of the execute-api callback URL.
    Default ``prod``.
``invitation_ttl_days``
    How long an invitation link stays valid, an integer from 1 to 30. Default 7.
``ses_sender``
    Optional verified SES identity (an email address or a domain) in the stack's region. When set,
    the ops CLI may email invitations and the refresh worker emails re-consent invitations (it may
    send from this identity only). Default ``null``: the CLI prints the link instead.
``operator_name``
    Optional name shown to advertisers on the consent and result pages, e.g. your agency's name.
``refresh_schedule_minutes``
    How often the refresh dispatcher runs (EventBridge ``rate(N minutes)``), an integer from 1 to
    15. Default 1.
``refresh_lead_minutes``
    An access token is refreshed once it has fewer than this many minutes left. Default 12. It must
    be at least ``10 + refresh_schedule_minutes + 1``: a token that just misses one dispatch is
    picked up by the next, ``refresh_schedule_minutes`` later, and refreshed within about a minute,
    so downstream always finds at least 10 minutes left. At most 29: an access token lives 60
    minutes, and a lead of half of that or more would refresh tokens nowhere near expiry.
``refresh_concurrency``
    At most this many refresh workers run at once (the SQS event source's maximum concurrency),
    an integer from 2 (the SQS minimum) to 50. Default 5. Each worker refreshes its batch of 10
    at once, so at most 10 × this many calls reach LwA in parallel.
``profile_refresh_hours``
    How often an advertiser's profiles are listed again by the refresher, an integer from 1 to
    168 (a week). Default 24.
``alert_email``
    Optional email address subscribed to the alert topic (refresh failures, advertisers that need
    to authorize again, the DLQ alarm). The address must confirm the subscription. Default
    ``null``: subscribe to the ``AlertTopicArn`` output yourself.
``api_throttle_rate_limit``
    Steady-state requests per second the API stage accepts (all routes together), an integer from
    1 to 10000. Default 50. The browser flow makes three requests per advertiser; this only keeps
    a misbehaving client from running up Lambda and LwA calls.
``api_throttle_burst_limit``
    Requests the stage accepts in a burst above the rate, an integer from 1 to 5000 and at least
    ``api_throttle_rate_limit``. Default 100.
``callback_reserved_concurrency``
    Reserved concurrency of the callback function, the only API function that calls LwA (code
    exchange): an integer from 1 to 1000, or ``null`` for none. Default 10. It caps the parallel
    code exchanges however many callbacks arrive, and guarantees the callback that capacity. The
    account must keep 100 unreserved executions after all reservations (see README).
``waf_enabled``
    ``true`` puts an AWS WAF web ACL in front of the API stage: the AWS managed common rule set
    and a per-IP rate limit (``waf_rate_limit``). Default ``false`` (WAF is billed per ACL, rule
    and request); the stage throttling and single-use invitation tokens and states apply either way.
``waf_rate_limit``
    With ``waf_enabled``, requests one IP address may make in any 5 minutes before WAF blocks it,
    an integer from 100 to 2000000000. Default 300.
``grant_lifetime_days``
    How long an advertiser's Amazon Ads grant lasts after consent, an integer from 1 to 3650.
    Default 365.
``grant_expiry_from``
    A date ``YYYY-MM-DD``: refresh tokens issued on or after it expire ``grant_lifetime_days``
    after consent (earlier ones do not expire). Default ``2026-06-30``.
``reconsent_lead_days``
    How many days before a grant ends the advertiser is invited to consent again: a non-empty list
    of distinct positive integers, each less than ``grant_lifetime_days``, in any order (passed on
    largest first). Default ``[30, 7, 1]``.
``operator_principal_arns``
    IAM principal ARNs (``*`` allowed, e.g. an SSO permission-set role pattern) that may read the
    LwA client secret and the refresh-token secrets besides the callback and refresh worker roles
    and the account root: whoever runs ``python -m adsauth refresh`` from a workstation. Default
    ``[]``. Everyone else is denied by the secrets' resource policies (see README runbook).

The LwA client *secret* never goes here: it lives in Secrets Manager (see README). A key that
looks like a secret is refused, as is any unknown key (typos would otherwise be silently ignored).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

SCOPES = (
    "advertising::campaign_management",
    "advertising::audiences",
    "cpc_advertising:campaign_management",
)
REGIONS = ("NA", "EU", "FE")

CLIENT_SECRET_REFUSED = (
    "the client secret never goes in cdk.json; put it in Secrets Manager, see README"
)

_CLIENT_ID = re.compile(r"^amzn1\.application-oa2-client\.[A-Za-z0-9]+$")
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?P<domain>[^@\s]+)$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$")
_STAGE = re.compile(r"^[A-Za-z0-9_]+$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # date.fromisoformat alone accepts 20260630 too
# An IAM user or role (optionally under a path); '*' and '?' may stand for parts of the name.
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/*?-]+$")


class ConfigError(ValueError):
    """The ``adsauth`` context is wrong; ``problems`` lists every mistake found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            "invalid cdk.json context 'adsauth':\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


@dataclass(frozen=True)
class AdsAuthConfig:
    client_id: str
    scope: str = SCOPES[0]
    allowed_regions: tuple[str, ...] = REGIONS
    callback_domain: str | None = None
    certificate_arn: str | None = None
    stage_name: str = "prod"
    invitation_ttl_days: int = 7
    ses_sender: str | None = None
    operator_name: str | None = None
    refresh_schedule_minutes: int = 1
    refresh_lead_minutes: int = 12
    refresh_concurrency: int = 5
    profile_refresh_hours: int = 24
    alert_email: str | None = None
    api_throttle_rate_limit: int = 50
    api_throttle_burst_limit: int = 100
    callback_reserved_concurrency: int | None = 10
    waf_enabled: bool = False
    waf_rate_limit: int = 300
    operator_principal_arns: tuple[str, ...] = ()
    grant_lifetime_days: int = 365
    grant_expiry_from: str = "2026-06-30"
    reconsent_lead_days: tuple[int, ...] = (30, 7, 1)

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


_DEFAULTS = AdsAuthConfig(client_id="")
KNOWN_KEYS = tuple(AdsAuthConfig.__dataclass_fields__)


def _is_hostname(value: Any) -> bool:
    return isinstance(value, str) and bool(_HOSTNAME.match(value))


def _check_client_id(value: Any, problems: list[str]) -> None:
    # The value is not echoed: a mistake here is sometimes a pasted secret.
    if not isinstance(value, str) or not _CLIENT_ID.match(value):
        problems.append(
            "client_id must look like 'amzn1.application-oa2-client.<letters and digits>' "
            "(the client id of your LwA security profile)"
        )


def _check_scope(value: Any, problems: list[str]) -> None:
    if value not in SCOPES:
        problems.append(f"scope must be one of {', '.join(SCOPES)}; got {value!r}")


def _check_regions(value: Any, problems: list[str]) -> None:
    if not isinstance(value, list) or not value:
        problems.append("allowed_regions must be a non-empty list drawn from NA, EU, FE")
        return
    unknown = [r for r in value if r not in REGIONS]
    if unknown:
        problems.append(f"allowed_regions may only contain NA, EU, FE; got {unknown!r}")
    duplicates = sorted({r for r in value if value.count(r) > 1}, key=str)
    if duplicates:
        problems.append(f"allowed_regions lists {duplicates!r} more than once")


def _check_domain(domain: Any, certificate: Any, problems: list[str]) -> None:
    if domain is None:
        if certificate is not None:
            problems.append("certificate_arn is only used with callback_domain; set both or neither")
        return
    if not _is_hostname(domain):
        problems.append(
            "callback_domain must be a bare hostname like 'auth.example.com' "
            f"(no scheme, path or port); got {domain!r}"
        )
    if certificate is None:
        problems.append("callback_domain needs certificate_arn (an ACM certificate for that name)")
    elif not isinstance(certificate, str) or not _ACM_ARN.match(certificate):
        problems.append(
            "certificate_arn must be an ACM certificate ARN "
            f"'arn:aws:acm:<region>:<account>:certificate/<id>'; got {certificate!r}"
        )


def _check_stage(value: Any, problems: list[str]) -> None:
    if not isinstance(value, str) or not _STAGE.match(value):
        problems.append(f"stage_name must match ^[A-Za-z0-9_]+$; got {value!r}")


def _check_ttl(value: Any, problems: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 30:
        problems.append(f"invitation_ttl_days must be an integer from 1 to 30; got {value!r}")


def _check_sender(value: Any, problems: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, str):
        email = _EMAIL.match(value)
        if (email and _is_hostname(email.group("domain"))) or _is_hostname(value):
            return
    problems.append(
        f"ses_sender must be a verified SES identity (an email address or a domain); got {value!r}"
    )


def _check_operator(value: Any, problems: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        problems.append("operator_name must be a non-empty string of at most 100 characters")


# Downstream is promised at least this many minutes on a token it reads (adsauth.client default).
MIN_DOWNSTREAM_MINUTES = 10
# Below half an access token's 60-minute life (adsauth.settings refuses 30 or more): a longer lead
# would refresh tokens that are nowhere near expiry.
MAX_REFRESH_LEAD_MINUTES = 29


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int_range(key: str, value: Any, low: int, high: int, why: str, problems: list[str]) -> bool:
    if _is_int(value) and low <= value <= high:
        return True
    problems.append(f"{key} must be an integer from {low} to {high}{why}; got {value!r}")
    return False


def _check_refresh(values: Mapping[str, Any], problems: list[str]) -> None:
    schedule_ok = _check_int_range(
        "refresh_schedule_minutes", values["refresh_schedule_minutes"], 1, 15, "", problems
    )
    lead = values["refresh_lead_minutes"]
    if not _is_int(lead):
        problems.append(f"refresh_lead_minutes must be an integer (minutes); got {lead!r}")
    elif lead > MAX_REFRESH_LEAD_MINUTES:
        problems.append(
            f"refresh_lead_minutes must be at most {MAX_REFRESH_LEAD_MINUTES}: an access token "
            f"lives 60 minutes, a lead of half of that or more refreshes tokens far from expiry; "
            f"got {lead}"
        )
    elif schedule_ok:
        schedule = values["refresh_schedule_minutes"]
        minimum = MIN_DOWNSTREAM_MINUTES + schedule + 1
        if lead < minimum:
            problems.append(
                f"refresh_lead_minutes must be at least {minimum} "
                f"({MIN_DOWNSTREAM_MINUTES} + refresh_schedule_minutes {schedule} + 1): a token "
                f"that just misses a dispatch waits {schedule} minute(s) for the next one and about "
                f"a minute to be refreshed, and downstream must still find "
                f"{MIN_DOWNSTREAM_MINUTES} minutes left; got {lead}"
            )
    _check_int_range(
        "refresh_concurrency",
        values["refresh_concurrency"],
        2,
        50,
        " (the SQS event source's maximum concurrency cannot be below 2)",
        problems,
    )
    _check_int_range(
        "profile_refresh_hours", values["profile_refresh_hours"], 1, 168, " (up to a week)", problems
    )


def _check_alert_email(value: Any, problems: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, str):
        email = _EMAIL.match(value)
        if email and _is_hostname(email.group("domain")):
            return
    problems.append(f"alert_email must be an email address like 'ops@example.com'; got {value!r}")


def _check_api(values: Mapping[str, Any], problems: list[str]) -> None:
    rate, burst = values["api_throttle_rate_limit"], values["api_throttle_burst_limit"]
    rate_ok = _check_int_range("api_throttle_rate_limit", rate, 1, 10000, " (requests per second)", problems)
    burst_ok = _check_int_range("api_throttle_burst_limit", burst, 1, 5000, " (requests)", problems)
    if rate_ok and burst_ok and burst < rate:
        problems.append(
            f"api_throttle_burst_limit ({burst}) must be at least api_throttle_rate_limit ({rate}): "
            "a bucket smaller than one second of traffic throttles requests the rate allows"
        )
    reserved = values["callback_reserved_concurrency"]
    if reserved is not None:
        _check_int_range(
            "callback_reserved_concurrency", reserved, 1, 1000, " or null (no reservation)", problems
        )


def _check_waf(values: Mapping[str, Any], problems: list[str]) -> None:
    if not isinstance(values["waf_enabled"], bool):
        problems.append(f"waf_enabled must be true or false; got {values['waf_enabled']!r}")
    _check_int_range(
        "waf_rate_limit",
        values["waf_rate_limit"],
        100,
        2_000_000_000,
        " (requests per IP address in 5 minutes)",
        problems,
    )


def _check_operators(value: Any, problems: list[str]) -> None:
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(
            "operator_principal_arns must be a list of IAM principal ARNs "
            "(e.g. ['arn:aws:iam::123456789012:role/AdsAuthOps'])"
        )
        return
    bad = [v for v in value if not _PRINCIPAL_ARN.match(v)]
    if bad:
        problems.append(
            "operator_principal_arns may only hold IAM user or role ARNs of this account like "
            f"'arn:aws:iam::123456789012:role/AdsAuthOps' ('*' allowed in the name); got {bad!r}"
        )


def _is_iso_date(value: Any) -> bool:
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:  # 2026-02-30
        return False
    return True


def _check_grants(values: Mapping[str, Any], problems: list[str]) -> None:
    lifetime = values["grant_lifetime_days"]
    lifetime_ok = _check_int_range("grant_lifetime_days", lifetime, 1, 3650, " (days)", problems)
    if not _is_iso_date(values["grant_expiry_from"]):
        problems.append(
            "grant_expiry_from must be a date 'YYYY-MM-DD' (refresh tokens issued on or after it "
            f"expire grant_lifetime_days after consent); got {values['grant_expiry_from']!r}"
        )
    leads = values["reconsent_lead_days"]
    if isinstance(leads, tuple):
        leads = list(leads)
    if not isinstance(leads, list) or not leads or not all(_is_int(d) and d > 0 for d in leads):
        problems.append(
            "reconsent_lead_days must be a non-empty list of positive integers (days before a grant "
            f"ends when the advertiser is invited to consent again), e.g. [30, 7, 1]; got {leads!r}"
        )
        return
    duplicates = sorted({d for d in leads if leads.count(d) > 1})
    if duplicates:
        problems.append(f"reconsent_lead_days lists {duplicates!r} more than once")
    too_early = sorted(d for d in leads if lifetime_ok and d >= lifetime)
    if too_early:
        problems.append(
            f"reconsent_lead_days must each be less than grant_lifetime_days ({lifetime}): an "
            f"invitation that early would be due at or before consent; got {too_early!r}"
        )


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
        problems.append(CLIENT_SECRET_REFUSED)
    unknown = sorted(str(k) for k in raw if k not in KNOWN_KEYS and not _looks_like_secret(str(k)))
    if unknown:
        problems.append(
            f"unknown key(s) {', '.join(unknown)}; known keys are {', '.join(KNOWN_KEYS)}"
        )

    values = {key: raw.get(key, getattr(_DEFAULTS, key)) for key in KNOWN_KEYS}
    if "client_id" not in raw:
        problems.append("client_id is required (the client id of your LwA security profile)")
    else:
        _check_client_id(values["client_id"], problems)
    _check_scope(values["scope"], problems)
    regions = values["allowed_regions"]
    _check_regions(list(regions) if isinstance(regions, tuple) else regions, problems)
    _check_domain(values["callback_domain"], values["certificate_arn"], problems)
    _check_stage(values["stage_name"], problems)
    _check_ttl(values["invitation_ttl_days"], problems)
    _check_sender(values["ses_sender"], problems)
    _check_operator(values["operator_name"], problems)
    _check_refresh(values, problems)
    _check_alert_email(values["alert_email"], problems)
    _check_api(values, problems)
    _check_waf(values, problems)
    _check_operators(values["operator_principal_arns"], problems)
    _check_grants(values, problems)

    if problems:
        raise ConfigError(problems)
    values["allowed_regions"] = tuple(regions)
    values["operator_principal_arns"] = tuple(values["operator_principal_arns"])
    values["reconsent_lead_days"] = tuple(sorted(values["reconsent_lead_days"], reverse=True))
    return AdsAuthConfig(**values)
