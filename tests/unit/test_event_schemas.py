"""The lifecycle events (``adsauth.events``) against their published schemas (``docs/events/``):
every builder's output validates, the schemas are strict enough to refuse what must never be
sent, and there is exactly one schema per detail-type."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from adsauth import events
from adsauth.lifecycle import grant_for
from adsauth.models import TokenSet
from adsauth.regions import Region
from adsauth.settings import DAY
from tests.unit.fakes import make_settings

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "docs" / "events"
SUFFIX = ".schema.json"
NOW = datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc).timestamp()
ADV = "adv-3f9c2a7b1d04"
ISO_FIELDS = ("occurredAt", "invitationExpiresAt", "consentedAt", "grantExpiresAt")


def load(detail_type: str) -> dict:
    return json.loads((SCHEMAS_DIR / f"{detail_type}{SUFFIX}").read_text())


def validator(detail_type: str) -> Draft202012Validator:
    return Draft202012Validator(load(detail_type), format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(detail_type: str, detail: dict) -> list[str]:
    return [e.message for e in validator(detail_type).iter_errors(detail)]


def assert_valid(event) -> None:
    # what EventBridge carries is the JSON text; the dict as built is checked too
    for detail in (event.detail, json.loads(json.dumps(event.detail))):
        assert errors(event.detail_type, detail) == []


def grants():
    """One grant of each basis, as ``lifecycle.grant_for`` (the only producer) makes them."""
    settings = make_settings()
    after = settings.grant_expiry_from + 10 * DAY
    tokens = TokenSet("at", "rt", after + 3600, refresh_token_expires_in=365 * DAY)
    return [
        grant_for(settings, after, now=after),  # consent
        grant_for(settings, after, tokens, now=after),  # token_response
        grant_for(settings, None, tokens, now=after),  # token_response, consent date unknown
        grant_for(settings, None, now=after),  # unknown_consent
        grant_for(settings, settings.grant_expiry_from - DAY, now=after),  # none
    ]


def representative_events():
    built = []
    for region in (Region.NA, Region.EU, "FE"):
        for purpose in ("invite", "reinvite", "reconsent"):
            built.append(events.invited(ADV, region=region, generation=1, purpose=purpose,
                                        expires_at=NOW + 7 * DAY, now=NOW))
    built.append(events.invited("a", region="NA", generation=2**40, purpose="invite", expires_at=NOW + 0.999, now=0.0))
    for grant in grants():
        for source in ("invitation", "manual_exchange", "import"):
            for reconsent in (False, True):
                built.append(events.connected(ADV, region=Region.EU, generation=3, source=source,
                                              consented_at=grant.consented_at, grant_expires_at=grant.expires_at,
                                              basis=grant.basis, now=NOW, reconsent=reconsent))
    built.append(events.declined(ADV, generation=1, reason="access_denied", now=NOW))
    for reason in ("invalid_grant", "refresh_token_missing", "grant_expired"):
        for expires in (None, NOW + 2 * DAY, NOW - DAY):
            built.append(events.needs_reauth(ADV, reason=reason, grant_expires_at=expires, now=NOW))
    for cause in ("operator", "contract ended"):
        built.append(events.revoked(ADV, cause=cause, now=NOW))
    for basis in ("consent", "token_response", "unknown_consent"):
        for lead, left, emailed in ((30, 30 * DAY, True), (7, 6.5 * DAY, False), (1, 3600, True), (1, -DAY, False)):
            built.append(events.grant_expiring(ADV, grant_expires_at=NOW + left, basis=basis, lead_days=lead,
                                               generation=2, emailed=emailed, now=NOW))
    built.append(events.profiles_changed(ADV, added=[], removed=[], now=NOW))
    built.append(events.profiles_changed(
        ADV, added=[(Region.NA, 3459842109387421), ("EU", 1)], removed=[(Region.FE, 1234567890123)], now=NOW,
    ))
    built.append(events.profiles_changed(ADV, added=[], removed=[("NA", 7), ("EU", 8)], now=9999999999.0))
    return built


EVENTS = representative_events()


def test_format_checking_is_real():
    # without rfc3339-validator jsonschema silently skips "date-time"; the patterns would still hold
    assert "date-time" in Draft202012Validator.FORMAT_CHECKER.checkers


def test_every_detail_type_has_one_schema_and_no_other():
    files = {p.name[: -len(SUFFIX)] for p in SCHEMAS_DIR.glob(f"*{SUFFIX}")}
    assert files == set(events.DETAIL_TYPES)
    assert len(events.DETAIL_TYPES) == len(set(events.DETAIL_TYPES)) == 8


def test_representative_events_cover_every_detail_type():
    assert {e.detail_type for e in EVENTS} == set(events.DETAIL_TYPES)


@pytest.mark.parametrize("detail_type", events.DETAIL_TYPES)
def test_schema_is_a_valid_strict_documented_2020_12_schema(detail_type):
    schema = load(detail_type)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] and "never carries a token" in schema["description"]
    # events.py always writes every key (None included), so every property is required
    assert set(schema["required"]) == set(schema["properties"])

    def objects(node):
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield node
            for value in node.values():
                yield from objects(value)
        elif isinstance(node, list):
            for value in node:
                yield from objects(value)

    found = list(objects({k: v for k, v in schema.items() if k != "examples"}))
    assert found and all(o.get("additionalProperties") is False for o in found)


@pytest.mark.parametrize("detail_type", events.DETAIL_TYPES)
def test_schema_examples_validate(detail_type):
    examples = load(detail_type)["examples"]
    assert examples
    for example in examples:
        assert errors(detail_type, example) == []


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.detail_type)
def test_built_event_validates(event):
    assert_valid(event)
    assert event.detail["eventId"] == event.event_id
    assert event.detail["advertiserId"] == event.advertiser_id


def test_times_are_whole_second_utc():
    event = events.invited(ADV, region="NA", generation=1, purpose="invite", expires_at=NOW + 0.999, now=NOW)
    assert event.detail["occurredAt"] == "2026-12-01T08:30:00Z"
    assert event.detail["invitationExpiresAt"] == "2026-12-01T08:30:00Z"


def test_days_left_never_negative():
    event = events.grant_expiring(ADV, grant_expires_at=NOW - 3 * DAY, basis="consent", lead_days=1,
                                  generation=2, emailed=False, now=NOW)
    assert event.detail["daysLeft"] == 0
    assert_valid(event)


def sample(detail_type: str) -> dict:
    return next(e.detail for e in EVENTS if e.detail_type == detail_type)


@pytest.mark.parametrize("detail_type", events.DETAIL_TYPES)
@pytest.mark.parametrize("field", ["refresh_token", "access_token", "code", "state", "email", "link"])
def test_an_extra_field_is_refused(detail_type, field):
    assert errors(detail_type, {**sample(detail_type), field: "x"})


@pytest.mark.parametrize("detail_type", events.DETAIL_TYPES)
def test_every_field_is_required(detail_type):
    detail = sample(detail_type)
    for key in detail:
        assert errors(detail_type, {k: v for k, v in detail.items() if k != key}), key


@pytest.mark.parametrize(
    ("detail_type", "field", "value"),
    [
        ("AdvertiserInvited", "purpose", "welcome"),
        ("AdvertiserInvited", "region", "US"),
        ("AdvertiserInvited", "region", "na"),
        ("AdvertiserConnected", "source", "api"),
        ("AdvertiserConnected", "grantExpiryBasis", "guess"),
        ("ReconsentCompleted", "source", "invite"),
        ("AdvertiserDeclined", "reason", "server_error"),
        ("AdvertiserNeedsReauth", "reason", "invalid_client"),
        ("GrantExpiring", "grantExpiryBasis", "none"),
        ("GrantExpiring", "reconsentEmailed", "yes"),
        ("GrantExpiring", "daysLeft", -1),
        ("GrantExpiring", "leadDays", 0),
        ("AdvertiserRevoked", "cause", ""),
        ("AdvertiserInvited", "generation", 0),
        ("AdvertiserInvited", "generation", 1.5),
        ("AdvertiserInvited", "generation", True),
        ("AdvertiserInvited", "version", "2"),
        ("AdvertiserInvited", "eventId", "0" * 31),
        ("AdvertiserInvited", "eventId", "A" * 32),
        ("AdvertiserInvited", "eventId", "0f9e8d7c-6b5a-4938-2716-a5b4c3d2e1f0"),
        ("AdvertiserInvited", "advertiserId", "adv 1"),
        ("AdvertiserInvited", "advertiserId", "someone@example.com"),
        ("AdvertiserInvited", "invitationExpiresAt", None),
        ("GrantExpiring", "grantExpiresAt", None),
        ("AdvertiserInvited", "occurredAt", "2026-12-01T08:30:00+00:00"),
        ("AdvertiserInvited", "occurredAt", "2026-12-01T08:30:00.123Z"),
        ("AdvertiserInvited", "occurredAt", "2026-12-01 08:30:00Z"),
        ("AdvertiserInvited", "occurredAt", "2026-13-01T08:30:00Z"),  # only the format check sees this
        ("AdvertiserInvited", "occurredAt", 1764577800),
        ("AdvertiserNeedsReauth", "grantExpiresAt", "2026-02-30T00:00:00Z"),
        ("ProfilesChanged", "added", [{"profileId": 1, "region": "NA", "name": "Acme"}]),
        ("ProfilesChanged", "added", [{"profileId": "1", "region": "NA"}]),
        ("ProfilesChanged", "removed", [{"profileId": 1}]),
        ("ProfilesChanged", "removed", None),
    ],
)
def test_a_wrong_value_is_refused(detail_type, field, value):
    detail = sample(detail_type)
    assert field in detail
    assert errors(detail_type, {**detail, field: value})


@pytest.mark.parametrize("detail_type", ["AdvertiserConnected", "ReconsentCompleted"])
def test_connection_times_agree_with_the_basis(detail_type):
    base = {**sample(detail_type), "consentedAt": "2026-12-01T08:30:00Z", "grantExpiresAt": "2027-12-01T08:30:00Z"}
    assert errors(detail_type, {**base, "grantExpiryBasis": "consent"}) == []
    assert errors(detail_type, {**base, "grantExpiryBasis": "none"})  # no known end, yet an end
    assert errors(detail_type, {**base, "grantExpiryBasis": "consent", "grantExpiresAt": None})
    assert errors(detail_type, {**base, "grantExpiryBasis": "unknown_consent"})  # unknown, yet a date
    assert errors(detail_type, {**base, "grantExpiryBasis": "token_response", "consentedAt": None})
    assert errors(detail_type, {**base, "grantExpiryBasis": "none", "grantExpiresAt": None}) == []
    assert errors(detail_type, {**base, "grantExpiryBasis": "unknown_consent", "consentedAt": None}) == []
