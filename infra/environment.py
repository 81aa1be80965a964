"""The environment every adsauth function gets: what ``adsauth.settings`` reads.

Names and references only, never a secret value (a test scans every function's variables).
"""

from __future__ import annotations

from infra.config import AdsAuthConfig
from infra.constants import METRICS_NAMESPACE, SERVICE_NAME
from infra.storage import Storage


def function_environment(
    config: AdsAuthConfig, storage: Storage, public_base_url: str
) -> dict[str, str]:
    env = {
        "TABLE_NAME": storage.table.table_name,
        "PUBLIC_BASE_URL": public_base_url,
        "LWA_CLIENT_ID": config.client_id,
        # The ARN, not the name: the name ends in "-client" (a hyphen and six characters), which
        # Secrets Manager could take for a partial ARN.
        "LWA_CLIENT_SECRET_NAME": storage.client_secret.secret_arn,
        "SECRET_PREFIX": storage.secret_prefix,
        "LWA_SCOPE": config.scope,
        "ALLOWED_REGIONS": ",".join(config.allowed_regions),
        "INVITATION_TTL_SECONDS": str(config.invitation_ttl_seconds),
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    }
    # what pages and e-mails show of the operator (adsauth.settings.Branding); the optional
    # ones only when set, so a function's settings tell "unset" from "set"
    env["OPERATOR_NAME"] = config.operator_name
    if config.support_contact:
        env["SUPPORT_CONTACT"] = config.support_contact
    if config.footer_text:
        env["FOOTER_TEXT"] = config.footer_text
    if config.from_address:
        # The address itself (SES needs one as Source), even when ses_sender is a domain.
        env["SES_FROM_ADDRESS"] = config.from_address
    return env


def grant_environment(config: AdsAuthConfig) -> dict[str, str]:
    """For the functions that work out when an advertiser's grant ends and when to invite them to
    consent again (callback, dispatcher, refresh worker)."""
    return {
        "GRANT_LIFETIME_DAYS": str(config.grant_lifetime_days),
        "GRANT_EXPIRY_FROM": config.grant_expiry_from,
        "RECONSENT_LEAD_DAYS": ",".join(str(days) for days in config.reconsent_lead_days),
    }


def refresher_environment(config: AdsAuthConfig) -> dict[str, str]:
    """For the dispatcher and the worker: the token layout they plan and write (``adsauth.packs``)."""
    return {"TOKEN_LAYOUT": config.token_layout}


def secret_writer_environment(storage: Storage, *, creates_refresh_secrets: bool) -> dict[str, str]:
    """For functions that create advertiser secrets: the key to create them with and, for the
    exchange path (the only one creating refresh-token secrets), who may read them."""
    env = {"SECRETS_KMS_KEY_ID": storage.secrets_key.key_arn}
    if creates_refresh_secrets:
        env["REFRESH_SECRET_READERS"] = ",".join(storage.secret_reader_patterns)
    return env
