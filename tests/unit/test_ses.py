"""SES, the runtime side (issue 10, finding 4): ``SES_FROM_ADDRESS`` is an address (the identity
may be its domain), and a refusal (the SES sandbox) is a typed error with a fixed message, in
the re-consent path of the worker (lead noted, ops alerted, no retry) as in the CLI."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError

from adsauth.adapters.notify import EmailNotSent, EmailRejected, SesMailer
from adsauth.lifecycle import grant_for
from adsauth.onboarding import Onboarding
from adsauth.refresher import Refresher
from adsauth.regions import Region
from adsauth.settings import DAY, SettingsError
from local.memory import MemoryPublisher
from tests.unit.fakes import Clock, FakeAds, FakeLwa, FakeNotifier, FakeQueue, FakeStore, FakeVault, make_settings

SANDBOX = ("Email address is not verified. The following identities failed the check in region US-EAST-1: "
           "ads@acme.example")


class RefusingSes:
    """SES as a sandboxed account answers: ``MessageRejected`` naming the recipient."""

    def __init__(self, code: str = "MessageRejected", message: str = SANDBOX) -> None:
        self.code, self.message, self.calls = code, message, []

    def send_email(self, **kwargs):
        self.calls.append(kwargs)
        raise ClientError({"Error": {"Code": self.code, "Message": self.message}}, "SendEmail")


# --- settings ---------------------------------------------------------------------------------------
def test_the_from_address_is_read_from_ses_from_address():
    assert make_settings(SES_FROM_ADDRESS="ops@mail.example.com").ses_from_address == "ops@mail.example.com"
    assert make_settings().ses_from_address == ""  # no e-mail
    assert make_settings(SES_SENDER="ops@example.com").ses_from_address == ""  # the old variable is gone


@pytest.mark.parametrize("value", ["example.com", "ops@", "@example.com", "Ops <ops@example.com>", "ops@example",
                                   "ops@exa mple.com", "a@b@example.com"])
def test_a_from_address_that_is_not_an_address_is_refused_with_a_fixed_error(value):
    with pytest.raises(SettingsError) as refused:
        make_settings(SES_FROM_ADDRESS=value)
    assert str(refused.value) == (
        "environment variable SES_FROM_ADDRESS must be an e-mail address (name@domain) in a verified SES identity"
    )


# --- the mailer -------------------------------------------------------------------------------------
def test_the_mailer_sends_from_the_address():
    sent = []

    class Ses:
        def send_email(self, **kwargs):
            sent.append(kwargs)

    SesMailer(client=Ses(), from_address="ops@example.com").send("ads@acme.example", "s", "b")
    assert sent[0]["Source"] == "ops@example.com" and sent[0]["Destination"] == {"ToAddresses": ["ads@acme.example"]}


def test_a_sandbox_refusal_is_a_fixed_typed_error_that_names_no_address():
    with pytest.raises(EmailRejected) as refused:
        SesMailer(client=RefusingSes(), from_address="ops@example.com").send("ads@acme.example", "s", "b")
    text = str(refused.value)
    assert text == EmailRejected.message and "sandbox" in text and "production access" in text
    assert "acme" not in text and "ops@example.com" not in text
    assert refused.value.__cause__ is None and refused.value.__suppress_context__  # SES's message goes nowhere


@pytest.mark.parametrize("code", ["Throttling", "AccountSendingPausedException", "ConfigurationSetDoesNotExist"])
def test_any_other_ses_failure_is_email_not_sent(code):
    with pytest.raises(EmailNotSent) as failed:
        SesMailer(client=RefusingSes(code, "ops@example.com ads@acme.example"), from_address="ops@example.com").send(
            "ads@acme.example", "s", "b")
    assert type(failed.value) is EmailNotSent and "acme" not in str(failed.value)


# --- the worker's re-consent path -------------------------------------------------------------------
class FailingMailer:
    def __init__(self) -> None:
        self.attempts = 0

    def send(self, to, subject, text, html=None):
        self.attempts += 1
        raise EmailRejected()


def test_a_rejected_reconsent_email_notes_the_lead_alerts_ops_once_and_is_not_retried():
    clock = Clock(datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp())
    settings = make_settings(SES_FROM_ADDRESS="ads@agency.example")
    store, vault, lwa, ads, notifier, mailer = FakeStore(settings.due_schedule), FakeVault(), FakeLwa(clock), FakeAds(), FakeNotifier(), FailingMailer()
    flow = Onboarding(settings=settings, store=store, vault=vault, lwa=lwa, ads=ads, clock=clock, publisher=MemoryPublisher())
    refresher = Refresher(settings=settings, store=store, vault=vault, lwa=lwa, ads=ads, notifier=notifier,
                          queue=FakeQueue(), clock=clock, sleep=lambda _s: None, mailer=mailer)
    adv, token = flow.invite(name="Acme", email="ads@acme.example", region=Region.NA)
    from tests.unit.test_lifecycle import open_flow

    assert flow.complete(*open_flow(flow, token), code="c", error=None).outcome == "connected"
    assert store.get_advertiser(adv.advertiser_id).grant_expires_at == grant_for(settings, clock(), now=clock()).expires_at
    clock.advance(335 * DAY + 60)  # 30 days before the grant ends

    result = refresher.refresh(adv.advertiser_id, force=True)  # the job ends normally: acknowledged
    assert result.outcome == "refreshed" and result.reconsent_lead == 30 and mailer.attempts == 1
    assert 30 in store.get_advertiser(adv.advertiser_id).reconsent_leads_sent  # noted: not sent again
    assert len(notifier.alerts) == 1
    subject, message = notifier.alerts[0]
    assert "reinvite" in message and "/connect/" not in message  # ops are told; no link is in the alert
    clock.advance(3600)
    assert refresher.refresh(adv.advertiser_id, force=True).reconsent_lead is None
    assert mailer.attempts == 1 and len(notifier.alerts) == 1  # no retry storm
