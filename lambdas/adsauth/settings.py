"""Typed settings, parsed once from the environment. Logic never reads ``os.environ``.

No secret is ever configured here: the LwA client secret is read from Secrets Manager by name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Mapping

from adsauth.models import DueSchedule
from adsauth.regions import Endpoints, Region, endpoints_from_env

DEFAULT_SCOPE = "advertising::campaign_management"
ACCESS_TOKEN_SECONDS = 3600  # what LwA grants; the lead window must stay well inside it
DAY = 86400
# Amazon Ads: refresh tokens issued on or after this date expire GRANT_LIFETIME_DAYS after the
# advertiser's consent, and refreshing does not extend them (token guide, release notes)
DEFAULT_GRANT_EXPIRY_FROM = "2026-06-30"
DEFAULT_GRANT_LIFETIME_DAYS = 365
DEFAULT_RECONSENT_LEAD_DAYS = (30, 7, 1)
# an address SES accepts as Source: one @, no spaces or brackets, a dotted domain (no display name)
FROM_ADDRESS = re.compile(r"[^@\s<>\"',;]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
# The operator's support contact (SUPPORT_CONTACT, cdk.json support_contact): an address (shown as
# a mailto: link) or an https URL without credentials, port or fragment. infra.config checks with
# these very patterns, so what synth accepts the functions accept.
SUPPORT_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
SUPPORT_URL = re.compile(
    r"https://(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    r"(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?(?:\?[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?"
)
SUPPORT_CONTACT_MAX = 200
OPERATOR_NAME_MAX = 100
FOOTER_TEXT_MAX = 200
# plain text on one line: no control characters (a line break in a mail subject), no markup
_NOT_PLAIN = re.compile(r"[\x00-\x1f\x7f<>]")
# nor Unicode's other line breaks and invisible format characters (U+2028, bidi overrides …),
# which could break a subject line or make a name read differently from what it is
_NOT_PLAIN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


class SettingsError(ValueError):
    """The environment is missing or misstates a setting."""


def is_support_contact(value: str) -> bool:
    """An e-mail address or an https URL, as ``support_contact`` may be."""
    return len(value) <= SUPPORT_CONTACT_MAX and bool(SUPPORT_EMAIL.fullmatch(value) or SUPPORT_URL.fullmatch(value))


def is_plain_text(value: str, limit: int) -> bool:
    """One line of 1..``limit`` characters with no markup, as the operator name and footer are."""
    import unicodedata

    return (0 < len(value) <= limit and bool(value.strip()) and not _NOT_PLAIN.search(value)
            and not any(unicodedata.category(c) in _NOT_PLAIN_CATEGORIES for c in value))


@dataclass(frozen=True)
class Branding:
    """What advertisers are shown about the operator on every page and e-mail (``adsauth.pages``,
    ``adsauth.mail``): deployment configuration, never request input."""

    operator_name: str
    support_contact: str = ""  # an address or an https URL; empty: no contact line
    footer_text: str = ""  # empty: the default footer, naming the operator

    @property
    def support_href(self) -> str:
        if not self.support_contact:
            return ""
        return self.support_contact if self.support_contact.startswith("https://") else f"mailto:{self.support_contact}"

    @property
    def footer(self) -> str:
        return self.footer_text or f"{self.operator_name} \u00b7 Amazon Ads account connection"


@dataclass(frozen=True)
class Settings:
    table_name: str
    public_base_url: str  # e.g. https://abc.execute-api.eu-west-1.amazonaws.com/prod (no trailing /)
    client_id: str
    client_secret_name: str  # Secrets Manager name/ARN of {"client_id": ..., "client_secret": ...}
    secret_prefix: str  # advertiser secrets live under <prefix>refresh/<id> and <prefix>access/<id>
    scope: str = DEFAULT_SCOPE
    allowed_regions: tuple[Region, ...] = (Region.NA, Region.EU, Region.FE)
    state_ttl_seconds: int = 600
    invitation_ttl_seconds: int = 7 * 24 * 3600
    http_timeout_seconds: float = 5.0
    http_max_attempts: int = 3
    http_backoff_cap_seconds: float = 4.0
    # the callback's outbound calls end this long before its Lambda deadline: the time kept to
    # store the grant, record the result and answer the browser (see ``adsauth.deadline``)
    callback_margin_seconds: float = 4.0
    # SES ``Source`` of invitation and re-consent e-mails (SES_FROM_ADDRESS): always an address;
    # its verified identity (cdk.json ``ses_sender``) is that address or its domain. Empty: no e-mail
    ses_from_address: str = ""
    # who advertisers are dealing with (OPERATOR_NAME, cdk.json operator_name, which synth requires):
    # empty only outside a deployed function, where rendering a page or e-mail is refused
    operator_name: str = ""
    support_contact: str = ""  # SUPPORT_CONTACT: an address or an https URL, shown when set
    footer_text: str = ""  # FOOTER_TEXT: replaces the default footer line
    endpoints: Mapping[Region, Endpoints] = field(default_factory=dict)
    # the refresher (optional: the API functions run without them)
    refresh_queue_url: str = ""
    alert_topic_arn: str = ""
    refresh_lead_seconds: int = 720
    profile_refresh_seconds: int = 86400
    refresh_lease_seconds: int = 120
    # where tokens live (``adsauth.packs``): "packed" (shared secrets) or "per_advertiser". A
    # function whose environment predates the setting keeps the layout it was built for.
    token_layout: str = "per_advertiser"
    # secrets created at runtime (optional: without them, Secrets Manager's defaults apply)
    secrets_kms_key_id: str = ""  # KMS key for new advertiser secrets (SECRETS_KMS_KEY_ID)
    # aws:PrincipalArn patterns that may read a refresh-token secret; everyone else is denied by a
    # resource policy put on each one (REFRESH_SECRET_READERS, comma-separated)
    refresh_secret_readers: tuple[str, ...] = ()
    # grants (see ``adsauth.grants``)
    grant_expiry_from: float = datetime(2026, 6, 30, tzinfo=timezone.utc).timestamp()
    grant_lifetime_seconds: int = DEFAULT_GRANT_LIFETIME_DAYS * DAY
    reconsent_lead_days: tuple[int, ...] = DEFAULT_RECONSENT_LEAD_DAYS
    grant_alarm_days: int = 7  # GrantsExpiringSoon while a grant ends within this, not re-consented
    # lifecycle events (EventBridge); empty: no events are written
    event_bus_name: str = ""
    # per invitation: flows opened and token calls made within a window (see ``lifecycle``)
    max_flows_per_window: int = 10
    max_token_calls_per_window: int = 5
    attempt_window_seconds: int = 600
    claim_seconds: int = 60  # how long one flow may hold the invitation while exchanging its code

    @property
    def due_schedule(self) -> DueSchedule:
        return DueSchedule(lead_seconds=self.refresh_lead_seconds, profile_refresh_seconds=self.profile_refresh_seconds)

    @property
    def branding(self) -> Branding:
        """The operator as pages and e-mails show it; ``SettingsError`` without a name: a page that
        reads "Thank you. can now ..." or names a placeholder is worse than none."""
        if not self.operator_name:
            raise SettingsError(
                "environment variable OPERATOR_NAME is required to render pages and e-mails "
                "(the stack sets it from cdk.json operator_name)"
            )
        return Branding(self.operator_name, self.support_contact, self.footer_text)

    @property
    def callback_url(self) -> str:
        """The ``redirect_uri``: one constant per deployment, identical in both requests."""
        return f"{self.public_base_url}/callback"

    def invitation_url(self, token: str) -> str:
        return f"{self.public_base_url}/connect/{token}"

    def result_url(self, outcome: str) -> str:
        return f"{self.public_base_url}/result/{outcome}"


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required")
    return value


def _number(env: Mapping[str, str], name: str, default: float, kind=float):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} must be a number") from None
    if value <= 0:
        raise SettingsError(f"environment variable {name} must be positive")
    return value


def _from_address(env: Mapping[str, str]) -> str:
    """SES needs an address as ``Source``: a domain here (its identity may be one) cannot send."""
    value = env.get("SES_FROM_ADDRESS", "").strip()
    if value and not FROM_ADDRESS.fullmatch(value):
        raise SettingsError(
            "environment variable SES_FROM_ADDRESS must be an e-mail address (name@domain) in a verified SES identity"
        )
    return value


def _plain(env: Mapping[str, str], name: str, limit: int) -> str:
    value = env.get(name, "").strip()
    if value and not is_plain_text(value, limit):
        raise SettingsError(
            f"environment variable {name} must be one line of plain text (no < or >), at most {limit} characters"
        )
    return value


def _support_contact(env: Mapping[str, str]) -> str:
    value = env.get("SUPPORT_CONTACT", "").strip()
    if value and not is_support_contact(value):
        raise SettingsError("environment variable SUPPORT_CONTACT must be an e-mail address or an https:// URL")
    return value


def settings_from_env(env: Mapping[str, str]) -> Settings:
    regions_raw = env.get("ALLOWED_REGIONS", "NA,EU,FE")
    try:
        regions = tuple(Region.parse(r.strip()) for r in regions_raw.split(",") if r.strip())
    except ValueError:
        raise SettingsError("ALLOWED_REGIONS must be a comma-separated subset of NA,EU,FE") from None
    if not regions:
        raise SettingsError("ALLOWED_REGIONS must name at least one region")
    lead = int(_number(env, "REFRESH_LEAD_SECONDS", 720, int))
    if lead >= ACCESS_TOKEN_SECONDS // 2:
        # a longer lead would refresh every token at nearly every run
        raise SettingsError("environment variable REFRESH_LEAD_SECONDS must be below 1800")
    try:
        grant_from = date.fromisoformat(env.get("GRANT_EXPIRY_FROM", "").strip() or DEFAULT_GRANT_EXPIRY_FROM)
    except ValueError:
        raise SettingsError("environment variable GRANT_EXPIRY_FROM must be a date (YYYY-MM-DD)") from None
    lifetime_days = int(_number(env, "GRANT_LIFETIME_DAYS", DEFAULT_GRANT_LIFETIME_DAYS, int))
    try:
        leads = tuple(sorted({int(d) for d in (env.get("RECONSENT_LEAD_DAYS", "").strip() or "30,7,1").split(",") if d.strip()}, reverse=True))
    except ValueError:
        leads = ()
    if not leads or leads[-1] <= 0 or leads[0] >= lifetime_days:
        raise SettingsError(
            "environment variable RECONSENT_LEAD_DAYS must be comma-separated days, each above 0 and below GRANT_LIFETIME_DAYS"
        )
    return Settings(
        table_name=_require(env, "TABLE_NAME"),
        public_base_url=_require(env, "PUBLIC_BASE_URL").rstrip("/"),
        client_id=_require(env, "LWA_CLIENT_ID"),
        client_secret_name=_require(env, "LWA_CLIENT_SECRET_NAME"),
        secret_prefix=_require(env, "SECRET_PREFIX"),
        scope=env.get("LWA_SCOPE", DEFAULT_SCOPE) or DEFAULT_SCOPE,
        allowed_regions=regions,
        state_ttl_seconds=int(_number(env, "STATE_TTL_SECONDS", 600, int)),
        invitation_ttl_seconds=int(_number(env, "INVITATION_TTL_SECONDS", 7 * 24 * 3600, int)),
        http_timeout_seconds=_number(env, "HTTP_TIMEOUT_SECONDS", 5.0),
        http_max_attempts=int(_number(env, "HTTP_MAX_ATTEMPTS", 3, int)),
        http_backoff_cap_seconds=_number(env, "HTTP_BACKOFF_CAP_SECONDS", 4.0),
        callback_margin_seconds=_number(env, "CALLBACK_MARGIN_SECONDS", 4.0),
        ses_from_address=_from_address(env),
        operator_name=_plain(env, "OPERATOR_NAME", OPERATOR_NAME_MAX),
        support_contact=_support_contact(env),
        footer_text=_plain(env, "FOOTER_TEXT", FOOTER_TEXT_MAX),
        endpoints=endpoints_from_env(env),
        refresh_queue_url=env.get("REFRESH_QUEUE_URL", "").strip(),
        alert_topic_arn=env.get("ALERT_TOPIC_ARN", "").strip(),
        refresh_lead_seconds=lead,
        profile_refresh_seconds=int(_number(env, "PROFILE_REFRESH_SECONDS", 86400, int)),
        refresh_lease_seconds=int(_number(env, "REFRESH_LEASE_SECONDS", 120, int)),
        token_layout=_layout(env),
        secrets_kms_key_id=env.get("SECRETS_KMS_KEY_ID", "").strip(),
        refresh_secret_readers=tuple(
            r.strip() for r in env.get("REFRESH_SECRET_READERS", "").split(",") if r.strip()
        ),
        grant_expiry_from=datetime(grant_from.year, grant_from.month, grant_from.day, tzinfo=timezone.utc).timestamp(),
        grant_lifetime_seconds=lifetime_days * DAY,
        reconsent_lead_days=leads,
        event_bus_name=env.get("EVENT_BUS_NAME", "").strip(),
    )


def _layout(env: Mapping[str, str]) -> str:
    from adsauth.packs import LAYOUTS

    layout = env.get("TOKEN_LAYOUT", "").strip() or "per_advertiser"
    if layout not in LAYOUTS:
        raise SettingsError("environment variable TOKEN_LAYOUT must be packed or per_advertiser")
    return layout


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env(os.environ)
