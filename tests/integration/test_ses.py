"""SES against moto (issue 10, finding 4, runtime): the from-address in a verified address or
domain identity sends; an unverified one is refused by SES with ``MessageRejected``, as a new
account's sandbox refuses unverified recipients, and that refusal is one fixed line in the CLI
and an alert (lead noted, no retry) in the worker's re-consent path."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from adsauth import cli, schema, wiring
from adsauth.adapters.notify import EmailRejected
from local.stack import TABLE_NAME
from tests.conftest import remember
from tests.integration.test_lifecycle import aged, connected_advertiser  # noqa: F401 - the fixture
from tests.integration.test_refresh import alerts  # noqa: F401 - the fixture

DAY = 86400


def unverified_address() -> str:
    """An address in a domain nobody verified (moto's SES state lasts the whole session)."""
    return f"adsauth@unverified-{uuid.uuid4().hex[:8]}.example"


@pytest.fixture
def email(stack):
    yield stack.enable_email
    stack.disable_email()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_from_address_in_a_verified_domain_sends(stack, email, capsys):
    domain = f"verified-{uuid.uuid4().hex[:8]}.example"
    email(f"invitations@{domain}", verify="domain")
    sent_before = len(stack.sent_emails())
    code, out, err = run(capsys, "invite", "--name", "Acme", "--email", "ads@acme.example")
    remember(out.split("/connect/", 1)[1].split()[0])
    assert (code, err) == (0, "") and "emailed to  ads@acme.example" in out
    mails = stack.sent_emails()[sent_before:]
    assert len(mails) == 1 and mails[0].source == f"invitations@{domain}"


def test_a_rejected_invitation_email_is_one_fixed_line_and_the_invitation_stands(stack, email, capsys):
    email(unverified_address(), verify=None)
    code, out, err = run(capsys, "invite", "--name", "Acme", "--email", "ads@acme.example")
    link = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("link:"))
    remember(link.rsplit("/", 1)[-1])
    assert code == 1
    assert err == f"error: {EmailRejected.message} The invitation was created: send the link above yourself.\n"
    assert "Traceback" not in err and "unverified-" not in err and "emailed to" not in out
    advertiser_id = next(line.split()[1] for line in out.splitlines() if line.startswith("advertiser:"))
    item = boto3.resource("dynamodb").Table(TABLE_NAME).get_item(Key=schema.advertiser_key(advertiser_id))["Item"]
    assert item["status"] == "invited"  # the link printed above works


def test_a_from_address_that_is_a_domain_is_a_settings_error(stack, monkeypatch, capsys):
    monkeypatch.setenv("SES_FROM_ADDRESS", "agency.example")
    wiring.reset()
    try:
        code, _out, err = run(capsys, "list")
    finally:
        monkeypatch.delenv("SES_FROM_ADDRESS")
        wiring.reset()
    assert code == 2 and err.startswith("error: environment variable SES_FROM_ADDRESS must be an e-mail address")
    assert len(err.splitlines()) == 1


def test_a_rejected_reconsent_email_notes_the_lead_and_alerts_ops_without_a_retry(stack, browser, aged, email,
                                                                                   alerts):
    advertiser_id = connected_advertiser(stack, browser)
    email(unverified_address(), verify=None)
    sent_before = len(stack.sent_emails())
    aged(335 * DAY + 60)  # 30 days before the grant ends
    result = wiring.refresher().refresh(advertiser_id, force=True)  # what the worker runs: it returns
    assert result.outcome == "refreshed" and result.reconsent_lead == 30
    adv = boto3.resource("dynamodb").Table(TABLE_NAME).get_item(Key=schema.advertiser_key(advertiser_id))["Item"]
    assert 30 in [int(lead) for lead in adv["reconsent_leads_sent"]]
    assert len(stack.sent_emails()) == sent_before  # SES refused it
    published = [json.loads(m["Message"]) if m["Message"].startswith("{") else m["Message"] for m in alerts()]
    assert len(published) == 1 and f"reinvite {advertiser_id}" in published[0]
    assert "/connect/" not in published[0]
    aged(3600)
    assert wiring.refresher().refresh(advertiser_id, force=True).reconsent_lead is None
    assert alerts() == []  # no second alert, no second attempt
