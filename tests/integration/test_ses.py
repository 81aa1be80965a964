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
    assert code == 1 and err.startswith("error: environment variable SES_FROM_ADDRESS must be an e-mail address")
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


# --- what the advertiser receives: both MIME parts, as SES (moto) received them ---------------------
@pytest.fixture
def ses_requests(monkeypatch):
    """Every SendEmail request moto's SES answered, as its parameters (moto's own record keeps one
    body part: the HTML when there is one)."""
    from moto.ses.responses import EmailResponse

    seen: list[dict[str, str]] = []
    original = EmailResponse.send_email

    def recording(self):
        seen.append({key: values[0] for key, values in self.querystring.items()})
        return original(self)

    monkeypatch.setattr(EmailResponse, "send_email", recording)
    return seen


def _parts_of(request: dict[str, str]) -> tuple[str, str, str]:
    assert request["Message.Subject.Charset"] == request["Message.Body.Text.Charset"] == "UTF-8"
    assert request["Message.Body.Html.Charset"] == "UTF-8"
    return request["Message.Subject.Data"], request["Message.Body.Text.Data"], request["Message.Body.Html.Data"]


def _assert_branded(text: str, html: str, link: str) -> None:
    from html import escape

    from local.stack import OPERATOR_NAME, SUPPORT_CONTACT

    host = link.split("/")[2].split(":")[0]
    assert link in text and f'<a href="{escape(link)}">' in html and f" on {host}</a>" in html
    for part in (text, html):
        assert OPERATOR_NAME in part and f"Questions? Contact {OPERATOR_NAME}: " in part
        assert f"{OPERATOR_NAME} \u00b7 Amazon Ads account connection" in part  # the default footer
    assert SUPPORT_CONTACT in text and f'<a href="mailto:{SUPPORT_CONTACT}">' in html
    assert "<img" not in html and "<script" not in html and "http://" not in html.replace(link, "")


def test_the_invitation_email_has_a_text_and_an_html_part(stack, email, ses_requests, capsys):
    from local.stack import OPERATOR_NAME

    email("adsauth@agency.example")
    sent_before = len(stack.sent_emails())
    code, out, err = run(capsys, "invite", "--name", 'Shop <b>"Acme"</b>', "--email", "ads@acme.example")
    assert (code, err) == (0, ""), err
    (request,) = ses_requests
    subject, text, html = _parts_of(request)
    link = next(line for line in text.splitlines() if "/connect/" in line)
    remember(link.rsplit("/", 1)[-1])
    assert subject == f"{OPERATOR_NAME} asks you to connect your Amazon Ads account"
    assert text.startswith('Hello Shop <b>"Acme"</b>,\n')  # plain text: the name as typed
    assert "<p>Hello Shop &lt;b&gt;&quot;Acme&quot;&lt;/b&gt;,</p>" in html  # HTML: escaped
    _assert_branded(text, html, link)
    (stored,) = stack.sent_emails()[sent_before:]
    assert stored.subject == subject and stored.body == html  # what moto's SES accepted


def test_the_reconsent_email_has_a_text_and_an_html_part(stack, browser, aged, email, ses_requests):
    from local.stack import OPERATOR_NAME

    advertiser_id = connected_advertiser(stack, browser)
    email("adsauth@agency.example")
    aged(335 * DAY + 60)  # 30 days before the grant ends
    assert wiring.refresher().refresh(advertiser_id, force=True).reconsent_lead == 30
    (request,) = ses_requests
    subject, text, html = _parts_of(request)
    assert subject == f"Please renew {OPERATOR_NAME}'s access to your Amazon Ads account"
    link = next(line for line in text.splitlines() if "/connect/" in line)
    remember(link.rsplit("/", 1)[-1])
    _assert_branded(text, html, link)
    assert "ends on" in text and "ends on" in html
