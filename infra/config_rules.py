"""The rules between keys of the ``adsauth`` block (``infra.config``), which no single field can
say: each is checked only when the keys it reads are valid on their own, so one mistake is
reported once."""

from __future__ import annotations

import json
from typing import Any, Mapping

# Downstream is promised at least this many minutes on a token it reads (adsauth.client default).
MIN_DOWNSTREAM_MINUTES = 10
# Below half an access token's 60-minute life (adsauth.settings refuses 30 or more): a longer lead
# would refresh tokens that are nowhere near expiry.
MAX_REFRESH_LEAD_MINUTES = 29


def shown(value: Any) -> str:
    """A rejected value as the user wrote it in cdk.json (JSON, so ``null``, ``true``, ``"7"``)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def cross_key_problems(values: Mapping[str, Any], failed: set[str]) -> list[str]:
    """The rules between keys, each checked only when the keys it reads are valid on their own."""
    problems: list[str] = []

    def ok(*keys: str) -> bool:
        return not failed.intersection(keys)

    domain, certificate = values["callback_domain"], values["certificate_arn"]
    if ok("callback_domain", "certificate_arn"):
        if domain is None and certificate is not None:
            problems.append("certificate_arn is only used with callback_domain; set both or neither")
        elif domain is not None and certificate is None:
            problems.append("callback_domain needs certificate_arn (an ACM certificate for that name)")

    if ok("refresh_schedule_minutes", "refresh_lead_minutes"):
        schedule, lead = values["refresh_schedule_minutes"], values["refresh_lead_minutes"]
        minimum = MIN_DOWNSTREAM_MINUTES + schedule + 1
        if lead < minimum:
            problems.append(
                f"refresh_lead_minutes must be at least {minimum} "
                f"({MIN_DOWNSTREAM_MINUTES} + refresh_schedule_minutes {schedule} + 1): a token "
                f"that just misses a dispatch waits {schedule} minute(s) for the next one and about "
                f"a minute to be refreshed, and downstream must still find "
                f"{MIN_DOWNSTREAM_MINUTES} minutes left; got {lead}"
            )

    if ok("api_throttle_rate_limit", "api_throttle_burst_limit"):
        rate, burst = values["api_throttle_rate_limit"], values["api_throttle_burst_limit"]
        if burst < rate:
            problems.append(
                f"api_throttle_burst_limit ({burst}) must be at least api_throttle_rate_limit "
                f"({rate}): a bucket smaller than one second of traffic throttles requests the rate "
                "allows"
            )

    if ok("grant_lifetime_days", "reconsent_lead_days"):
        lifetime = values["grant_lifetime_days"]
        too_early = sorted(d for d in values["reconsent_lead_days"] if d >= lifetime)
        if too_early:
            problems.append(
                f"reconsent_lead_days must each be less than grant_lifetime_days ({lifetime}): an "
                f"invitation that early would be due at or before consent; got {shown(too_early)}"
            )

    if ok("ses_sender", "ses_from_address"):
        problems.extend(_sender_problems(values["ses_sender"], values["ses_from_address"]))
    return problems


def _sender_problems(sender: str | None, from_address: str | None) -> list[str]:
    if sender is None:
        if from_address is not None:
            return ["ses_from_address needs ses_sender (the verified SES identity it belongs to)"]
        return []
    if "@" in sender:
        if from_address is not None and from_address.lower() != sender.lower():
            return [
                "ses_from_address must be ses_sender itself when ses_sender is an address (SES "
                f"sends only from the verified address); got {shown(from_address)}"
            ]
        return []
    if from_address is None:
        return [
            f"ses_sender {shown(sender)} is a domain: set ses_from_address to the address the "
            f"e-mails come from, e.g. \"adsauth@{sender}\" (SES needs an address as Source)"
        ]
    domain, identity = _domain_of(from_address), sender.lower()
    if domain != identity and not domain.endswith("." + identity):
        return [
            f"ses_from_address must be an address of ses_sender's domain {shown(sender)} or of "
            f"one of its subdomains (what a verified domain covers); got {shown(from_address)}"
        ]
    return []
