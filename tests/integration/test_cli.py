"""The ops CLI against the local stack: invite, list, show, refresh, reinvite, revoke."""

from __future__ import annotations

import os

import boto3
import pytest

from adsauth import cli
from tests.conftest import remember
from tests.integration.conftest import secret_names


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def link_of(out: str) -> str:
    link = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("link:"))
    remember(link.rsplit("/", 1)[-1])
    return link


def advertiser_of(out: str) -> str:
    return next(line.split()[1] for line in out.splitlines() if line.startswith("advertiser:"))


def connect(browser, link: str) -> str:
    consent = browser.open(link)
    return browser.follow(browser.click(consent, "allow")).text


def test_invite_prints_a_link_to_our_api(stack, capsys, browser):
    code, out, _ = run(capsys, "invite", "--name", "Acme", "--email", "ads@acme.example", "--region", "FE")
    assert code == 0
    link = link_of(out)
    assert link.startswith(f"{stack.base_url}/connect/")
    assert "amazon" not in link
    assert 'data-page="connected"' in connect(browser(), link)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--region", "XX"], "region must be one of NA, EU, FE"),
        (["--email", "not-an-email"], "email is not a valid address"),
        (["--valid-days", "-1"], "--valid-days"),
        (["--valid-days", "90"], "--valid-days"),
    ],
)
def test_invite_rejects_bad_input_and_stores_nothing(stack, capsys, argv, message):
    base = {"--name": "Acme", "--email": "ads@acme.example"}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    before = len(boto3.resource("dynamodb").Table("adsauth-local").scan()["Items"])
    code, out, err = run(capsys, "invite", *[x for pair in base.items() for x in pair])
    assert code != 0 and message in err and "link" not in out
    assert len(boto3.resource("dynamodb").Table("adsauth-local").scan()["Items"]) == before


def test_list_and_show(stack, capsys, flow):
    f = flow("EU")
    f.consent()
    f.callback()
    code, out, _ = run(capsys, "list")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith(f.advertiser_id))
    assert "connected" in row and row.split()[-3:] == ["2", "2", "1"]
    code, out, _ = run(capsys, "show", f.advertiser_id)
    assert code == 0
    assert "status:        connected" in out and "connected" in out.split("events")[1]
    assert "Atza|" not in out and "Atzr|" not in out


@pytest.mark.parametrize("command", [["show"], ["refresh"], ["reinvite"], ["revoke", "--yes"]])
def test_unknown_advertiser_is_a_clear_error(stack, capsys, command):
    code, out, err = run(capsys, command[0], "adv-000000000000", *command[1:])
    assert code == 1 and "no advertiser 'adv-000000000000'" in err


def test_refresh_now_moves_the_expiry_and_replaces_the_token(stack, capsys, flow, emulator_clock):
    f = flow()
    f.consent()
    f.callback()
    name = f"adsauth/local/advertisers/access/{f.advertiser_id}"
    sm = boto3.client("secretsmanager")
    before = sm.get_secret_value(SecretId=name)["SecretString"]
    expires_before = float(f.advertiser()["token_expires_at"])
    code, out, _ = run(capsys, "refresh", f.advertiser_id)
    assert code == 0 and "refresh:       refreshed" in out
    after = sm.get_secret_value(SecretId=name)["SecretString"]
    assert after != before
    assert float(f.advertiser()["token_expires_at"]) >= expires_before
    assert stack.emulator.count("token", grant_type="refresh_token") == 1


def test_revoke_deletes_tokens_and_keeps_records(stack, capsys, flow):
    f = flow()
    f.consent()
    f.callback()
    code, _, err = run(capsys, "revoke", f.advertiser_id)
    assert code == 2 and "--yes" in err
    assert f"adsauth/local/advertisers/refresh/{f.advertiser_id}" in secret_names()
    code, out, _ = run(capsys, "revoke", f.advertiser_id, "--yes")
    assert code == 0
    names = secret_names()
    assert f"adsauth/local/advertisers/refresh/{f.advertiser_id}" not in names
    assert f"adsauth/local/advertisers/access/{f.advertiser_id}" not in names
    assert f.advertiser()["status"] == "revoked"
    code, out, _ = run(capsys, "show", f.advertiser_id)
    assert "revoked" in out.split("events")[1] and "profiles:" in out


def test_reinvite_reconnects_a_revoked_advertiser(stack, capsys, flow, browser):
    f = flow()
    f.consent()
    f.callback()
    run(capsys, "revoke", f.advertiser_id, "--yes")
    code, out, _ = run(capsys, "reinvite", f.advertiser_id)
    assert code == 0 and advertiser_of(out) == f.advertiser_id
    assert 'data-page="connected"' in connect(browser(), link_of(out))
    assert f.advertiser()["status"] == "connected"
    assert f"adsauth/local/advertisers/refresh/{f.advertiser_id}" in secret_names()


def test_invite_sends_the_link_by_email_when_ses_is_configured(stack, capsys, monkeypatch):
    from adsauth import wiring

    ses = boto3.client("ses")
    ses.verify_email_identity(EmailAddress="ops@agency.example")
    sent_before = ses.get_send_quota()["SentLast24Hours"]
    monkeypatch.setitem(os.environ, "SES_SENDER", "ops@agency.example")
    wiring.reset()
    try:
        code, out, _ = run(capsys, "invite", "--name", "Acme", "--email", "ads@acme.example")
    finally:
        monkeypatch.delitem(os.environ, "SES_SENDER")
        wiring.reset()
    link_of(out)
    assert code == 0 and "emailed to  ads@acme.example" in out
    assert ses.get_send_quota()["SentLast24Hours"] == sent_before + 1


def test_invitation_email_explains_what_the_advertiser_will_see():
    from tests.unit.fakes import make_settings

    subject, body = cli.invitation_email(make_settings(OPERATOR_NAME="Example Agency"), "Acme", "https://x/connect/t", 1.8e9)
    assert "Example Agency" in subject and "Amazon Ads" in subject
    assert "Allow" in body and "https://x/connect/t" in body and "works once" in body
