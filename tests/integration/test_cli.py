"""The ops CLI against the local stack: invite, list, show, refresh, reinvite, cancel, revoke, import.

The stack runs the packed token layout: what a refresh or a revoke did to an advertiser's tokens
is checked wherever they are (``local.stack.stored_tokens``: its own secrets or its pack's)."""

from __future__ import annotations

import io
import json
import os
import re
import time
import uuid
from datetime import datetime, timezone

import boto3
import pytest

from adsauth import cli
from local.stack import CLIENT_ID, stored_tokens
from tests.conftest import remember
from tests.integration.conftest import secret_names
from tests.stack_fixtures import into_a_new_pack


def browser_opens(stack, link: str):
    import requests

    from urllib.parse import parse_qs, urlsplit

    answer = requests.get(link, allow_redirects=False, timeout=15)
    remember(*answer.headers.get("Set-Cookie", "").split(";")[0].split("=")[1:],
             *parse_qs(urlsplit(answer.headers.get("Location", "")).query).get("state", []))
    return answer


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # what came before (the local functions' metrics lines) is not the command's
    try:
        code = cli.main(list(argv))
    except SystemExit as exited:  # argparse: a malformed command line (2), --help, --version (0)
        code = exited.code
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(err: str) -> str:
    """The message of a usage error (exit 2): the command's usage, then one ``error:`` line."""
    assert err.startswith("usage: adsauth "), err
    assert "Traceback" not in err
    return err.splitlines()[-1]


def link_of(out: str) -> str:
    link = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("link:"))
    remember(link.rsplit("/", 1)[-1])
    return link


def advertiser_of(out: str) -> str:
    return next(line.split()[1] for line in out.splitlines() if line.startswith("advertiser:"))


def connect(browser, link: str) -> str:
    consent = browser.open(link)
    return browser.follow(browser.click(consent, "allow")).text


def tokens(advertiser_id: str, **where) -> dict | None:
    found = stored_tokens(advertiser_id, **where)
    if found:
        remember(found["refresh_token"], found["access_token"])
    return found


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


@pytest.mark.parametrize("command", [["show"], ["refresh"], ["reinvite"], ["cancel"], ["revoke", "--yes"]])
def test_unknown_advertiser_is_a_clear_error(stack, capsys, command):
    code, out, err = run(capsys, command[0], "adv-000000000000", *command[1:])
    assert code == 1 and "no advertiser 'adv-000000000000'" in err


@pytest.mark.parametrize("place", ["own", "pack"])
def test_refresh_now_moves_the_expiry_and_replaces_the_token(stack, capsys, flow, emulator_clock, place):
    """Of an advertiser of its own secrets (a new grant) and of a pack's member."""
    f = flow()
    f.consent()
    f.callback()
    pack = into_a_new_pack(f.advertiser_id) if place == "pack" else ""
    before = tokens(f.advertiser_id)
    assert (before["where"], before["pack"]) == (place, pack)
    expires_before = float(f.advertiser()["token_expires_at"])
    calls = stack.emulator.count("token", grant_type="refresh_token")
    code, out, _ = run(capsys, "refresh", f.advertiser_id)
    assert code == 0 and "refresh:       refreshed" in out
    after = tokens(f.advertiser_id)
    assert after["access_token"] != before["access_token"] and after["pack"] == pack  # replaced where it was
    assert float(f.advertiser()["token_expires_at"]) >= expires_before
    assert float(f.advertiser()["token_expires_at"]) == pytest.approx(after["expires_at"], abs=1)
    assert stack.emulator.count("token", grant_type="refresh_token") == calls + 1


@pytest.mark.parametrize("place", ["own", "pack"])
def test_revoke_deletes_tokens_and_keeps_records(stack, capsys, flow, place):
    f = flow()
    f.consent()
    f.callback()
    pack = into_a_new_pack(f.advertiser_id) if place == "pack" else ""
    code, _, err = run(capsys, "revoke", f.advertiser_id)
    assert code == 2 and "--yes" in err
    assert tokens(f.advertiser_id)["where"] == place  # still there
    assert (f"adsauth/local/advertisers/refresh/{f.advertiser_id}" in secret_names()) is (place == "own")
    code, out, _ = run(capsys, "revoke", f.advertiser_id, "--yes")
    assert code == 0
    names = secret_names()
    assert f"adsauth/local/advertisers/refresh/{f.advertiser_id}" not in names
    assert f"adsauth/local/advertisers/access/{f.advertiser_id}" not in names
    assert f.advertiser()["status"] == "revoked" and tokens(f.advertiser_id) is None
    assert pack == "" or tokens(f.advertiser_id, pack=pack) is None  # no entry left in the pack either
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
    monkeypatch.setitem(os.environ, "SES_FROM_ADDRESS", "ops@agency.example")
    wiring.reset()
    try:
        code, out, err = run(capsys, "invite", "--name", "Acme", "--email", "ads@acme.example")
    finally:
        monkeypatch.delitem(os.environ, "SES_FROM_ADDRESS")
        wiring.reset()
    link_of(out)
    assert code == 0 and "emailed to  ads@acme.example" in out, err
    assert ses.get_send_quota()["SentLast24Hours"] == sent_before + 1


def test_invitation_email_explains_what_the_advertiser_will_see():
    from tests.unit.fakes import make_settings

    subject, body, html = cli.invitation_email(make_settings(OPERATOR_NAME="Example Agency"), "Acme", "https://x/connect/t", 1.8e9)
    assert "Example Agency" in subject and "Amazon Ads" in subject
    assert "Allow" in body and "https://x/connect/t" in body and "works once" in body
    assert "https://x/connect/t" in html


# --- helpers for the commands below -------------------------------------------------------------
def when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d")


def midnight(on: str) -> float:
    return datetime.fromisoformat(on).replace(tzinfo=timezone.utc).timestamp()


def line_of(out: str, label: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(label))


def row_of(out: str, advertiser_id: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(advertiser_id))


def cell(out: str, advertiser_id: str, column: str) -> str:
    """One cell of `list`: each column starts where its header does (names may hold spaces)."""
    starts = {m[0]: m.start() for m in re.finditer(r"\S+(?: \S+)*", out.splitlines()[0])}
    later = [start for start in starts.values() if start > starts[column]]
    return row_of(out, advertiser_id)[starts[column]:min(later, default=None)].strip()


def new_token(stack, *, user: str = "demo-user", consented_at: float | None = None) -> str:
    token = stack.emulator.issue_refresh_token(CLIENT_ID, user_id=user, consented_at=consented_at)
    remember(token)
    return token


def run_import(capsys, monkeypatch, stdin: str, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return run(capsys, "import", *argv)


def identity(name: str = "Acme", email: str = "ads@acme.example", region: str = "EU", on: str = "unknown") -> list[str]:
    return ["--name", name, "--email", email, "--region", region, "--consented-on", on]


def advertiser_ids() -> set[str]:
    from adsauth import wiring

    return {a.advertiser_id for a in wiring.store().list_advertisers()}


def refresh_secret(advertiser_id: str) -> str:
    return f"adsauth/local/advertisers/refresh/{advertiser_id}"


@pytest.fixture
def grants_end_since_2020(stack):
    """Every consent since 2020 ends after a year, so a test can import grants ending within days
    (by default only consents since 2026-06-30 end, a year later)."""
    from adsauth import wiring

    saved = os.environ.get("GRANT_EXPIRY_FROM")
    os.environ["GRANT_EXPIRY_FROM"] = "2020-01-01"
    wiring.reset()
    yield
    if saved is None:
        os.environ.pop("GRANT_EXPIRY_FROM", None)
    else:
        os.environ["GRANT_EXPIRY_FROM"] = saved
    wiring.reset()


# --- cancel ---------------------------------------------------------------------------------------
def test_cancel_kills_the_link_and_every_sign_in_it_started(stack, capsys, flow, browser):
    f = flow()  # the link was opened: a sign-in is on its way to Amazon
    code, out, err = run(capsys, "cancel", f.advertiser_id)
    assert code == 0 and err == ""
    assert out == (f"{f.advertiser_id}: invitation cancelled; its link and every sign-in it started "
                   "no longer work (status cancelled)\n")
    page = browser().get(f.link)
    assert page.status_code == 410 and 'data-page="invitation_replaced"' in page.text
    assert stack.emulator.calls == []  # the dead link never reached Login with Amazon
    f.consent()  # the sign-in started before: Amazon still asks, our callback stores nothing
    page = f.callback()
    assert page.status_code == 410 and 'data-page="invitation_replaced"' in page.text
    assert stack.emulator.count("token") == 0
    assert f.advertiser()["status"] == "cancelled" and refresh_secret(f.advertiser_id) not in secret_names()
    code, out, _ = run(capsys, "show", f.advertiser_id)
    assert "status:        cancelled (operator)" in out
    assert {"generation:    2", "invitation:    none", "grant expires: -", "re-consent:    none"} <= set(out.splitlines())
    assert "cancelled" in out.split("events")[1]


def test_cancel_without_an_open_invitation_is_refused_and_changes_nothing(stack, capsys, flow):
    f = flow()
    f.consent()
    f.callback()  # connected: its invitation is completed
    before = f.advertiser()
    code, out, err = run(capsys, "cancel", f.advertiser_id, "--yes")
    assert (code, out, err) == (1, "", "error: The advertiser has no open invitation to cancel.\n")
    assert f.advertiser() == before
    other = flow()
    assert run(capsys, "cancel", other.advertiser_id)[0] == 0
    cancelled = other.advertiser()
    code, _, err = run(capsys, "cancel", other.advertiser_id)
    assert code == 1 and "no open invitation" in err and other.advertiser() == cancelled


def test_cancelling_a_reinvite_keeps_the_working_grant(stack, capsys, flow, browser):
    f = flow()
    f.consent()
    f.callback()
    code, out, _ = run(capsys, "reinvite", f.advertiser_id, "--no-email")
    link = link_of(out)
    code, out, _ = run(capsys, "list")
    assert cell(out, f.advertiser_id, "STATUS") == "connected+"
    assert "connected+ = re-consent pending" in out.splitlines()[-1]
    code, out, _ = run(capsys, "show", f.advertiser_id)
    assert line_of(out, "invitation:").endswith("(reinvite)") and "invitation:    open until" in out
    assert line_of(out, "re-consent:").startswith("re-consent:    pending (an operator's reinvite")
    code, out, _ = run(capsys, "cancel", f.advertiser_id)
    assert code == 0 and out.rstrip().endswith("(status connected: its current grant keeps serving)")
    code, out, _ = run(capsys, "show", f.advertiser_id)
    assert {"status:        connected", "generation:    3", "invitation:    none", "re-consent:    none"} <= set(out.splitlines())
    assert refresh_secret(f.advertiser_id) in secret_names()
    assert 'data-page="invitation_replaced"' in browser().get(link).text
    assert stack.emulator.count("authorize") == 1  # only the first consent's
    assert run(capsys, "refresh", f.advertiser_id)[0] == 0  # the grant still works


# --- revoke --cause -------------------------------------------------------------------------------
@pytest.mark.parametrize("cause", ["Operator", "contract ended", "x" * 41, "", "_ended", "1ended", "ended\n", "ended;x", "endé"])
def test_revoke_cause_must_be_a_fixed_code(stack, capsys, flow, cause):
    f = flow()
    f.consent()
    f.callback()
    code, out, err = run(capsys, "revoke", f.advertiser_id, "--yes", "--cause", cause)
    assert code == 2 and out == "" and usage_error(err).startswith("error: --cause must be a code of a-z and _")
    assert f.advertiser()["status"] == "connected" and refresh_secret(f.advertiser_id) in secret_names()


@pytest.mark.parametrize("cause", ["contract_ended", "a" * 40])
def test_revoke_records_its_cause(stack, capsys, flow, cause):
    f = flow()
    f.consent()
    f.callback()
    assert run(capsys, "revoke", f.advertiser_id, "--yes", "--cause", cause)[0] == 0
    code, out, _ = run(capsys, "show", f.advertiser_id)
    assert f"status:        revoked ({cause})" in out and f"revoked       {cause}" in out.split("events")[1]
    assert "grant expires: - (revoked: its tokens were deleted)" in out


# --- show: the grant ------------------------------------------------------------------------------
def test_show_tells_when_a_fresh_consent_ends(stack, capsys, flow):
    from adsauth.settings import get_settings

    f = flow("FE")
    f.consent()
    f.callback()
    item = f.advertiser()
    consented, lifetime = float(item["consented_at"]), get_settings().grant_lifetime_seconds
    assert abs(consented - time.time()) < 60 and item["grant_expiry_basis"] == "consent"
    code, out, _ = run(capsys, "show", f.advertiser_id)
    assert line_of(out, "grant expires:") == (
        f"grant expires: {when(consented + lifetime)} (consent {day(consented)}; {lifetime // 86400} days)")
    assert {"generation:    1", "invitation:    none", "re-consent:    none"} <= set(out.splitlines())
    code, out, _ = run(capsys, "list")
    assert when(consented + lifetime) in row_of(out, f.advertiser_id)


def test_list_and_show_tell_an_expired_invitation_from_an_open_one(stack, capsys, monkeypatch):
    from adsauth import wiring

    code, out, _ = run(capsys, "invite", "--name", "Late", "--email", "ads@late.example")
    link_of(out)
    advertiser_id = advertiser_of(out)
    code, out, _ = run(capsys, "show", advertiser_id)
    assert line_of(out, "invitation:").startswith("invitation:    open until") and out.count("(invite)") == 1
    assert {"grant expires: -", "generation:    1", "re-consent:    none"} <= set(out.splitlines())
    code, out, _ = run(capsys, "list")
    assert cell(out, advertiser_id, "STATUS") == "invited"
    monkeypatch.setattr(wiring, "clock", lambda: time.time() + 8 * 86400)  # past the 7-day link
    code, out, _ = run(capsys, "list")
    assert cell(out, advertiser_id, "STATUS") == "invitation_expired"
    code, out, _ = run(capsys, "show", advertiser_id)
    assert line_of(out, "invitation:").startswith("invitation:    expired ") and "status:        invited" in out


# --- import ---------------------------------------------------------------------------------------
def test_import_reads_the_token_from_stdin_proves_it_and_connects(stack, capsys, monkeypatch):
    from adsauth.settings import get_settings

    consented = time.time() - 10 * 86400
    token = new_token(stack, consented_at=consented)
    on = day(consented)
    code, out, err = run_import(capsys, monkeypatch, token + "\n", *identity(on=on))
    assert code == 0, err
    assert token not in out + err and "Atzr|" not in out + err and "Atza|" not in out + err
    advertiser_id = advertiser_of(out)
    lifetime = get_settings().grant_lifetime_seconds
    expected = f"grant expires: {when(midnight(on) + lifetime)} (consent {on}; {lifetime // 86400} days)"
    assert out.splitlines()[1:] == ["status:        connected", "profiles:      NA 2, EU 2, FE 1", expected]
    assert stack.emulator.count("token", grant_type="refresh_token") == 1 and stack.emulator.count("profiles") == 3
    stored = boto3.client("secretsmanager").get_secret_value(SecretId=refresh_secret(advertiser_id))["SecretString"]
    assert token in stored
    code, out, _ = run(capsys, "show", advertiser_id)
    assert expected in out.splitlines() and "connected     import" in out.split("events")[1]
    assert run(capsys, "refresh", advertiser_id)[0] == 0  # the refresher takes it from here


def test_import_with_an_unknown_consent_date_takes_the_earliest_end(stack, capsys, monkeypatch):
    from adsauth.settings import get_settings

    token = new_token(stack)
    s = get_settings()
    earliest = when(max(s.grant_expiry_from + s.grant_lifetime_seconds, time.time()))
    code, out, err = run_import(capsys, monkeypatch, f"  {token}  \n", *identity(on="unknown"))
    assert code == 0, err
    assert line_of(out, "grant expires:") == (
        f"grant expires: at the earliest {earliest} (consent date unknown: re-consent is asked before that)")
    advertiser_id = advertiser_of(out)
    code, out, _ = run(capsys, "show", advertiser_id)
    assert line_of(out, "grant expires:") == f"grant expires: at the earliest {earliest} (consent date unknown)"
    code, out, _ = run(capsys, "list")
    assert cell(out, advertiser_id, "GRANT EXPIRES") == f">={earliest}"
    assert ">= = at the earliest (consent date unknown)" in out.splitlines()[-1]


def test_import_of_a_consent_before_grants_ended_has_no_known_end(stack, capsys, monkeypatch):
    from adsauth.settings import get_settings

    start = get_settings().grant_expiry_from
    token = new_token(stack, consented_at=start - 30 * 86400)
    code, out, err = run_import(capsys, monkeypatch, token, *identity(on=day(start - 30 * 86400)))
    assert code == 0, err
    assert line_of(out, "grant expires:") == f"grant expires: no end known (consent before {day(start)})"
    code, out, _ = run(capsys, "show", advertiser_of(out))
    assert line_of(out, "grant expires:") == f"grant expires: no end known (consent before {day(start)})"


def test_import_of_a_revoked_token_is_refused_and_stores_nothing(stack, capsys, monkeypatch):
    token = new_token(stack)
    stack.emulator.revoke_grant("demo-user", CLIENT_ID)
    ids, secrets = advertiser_ids(), secret_names()
    code, out, err = run_import(capsys, monkeypatch, token + "\n", *identity(on="unknown"))
    assert (code, out) == (1, "")
    assert err == ("error: Login with Amazon refused this refresh token (invalid_grant): it expired, was revoked, "
                   "or belongs to another client\n")
    assert advertiser_ids() == ids and secret_names() == secrets
    assert stack.emulator.count("token", grant_type="refresh_token") == 1 and stack.emulator.count("profiles") == 0


@pytest.mark.parametrize(
    "flags, stdin, code, message",
    [
        ({"--consented-on": "tomorrow"}, "token", 1, "--consented-on must be a date (YYYY-MM-DD) or unknown"),
        ({"--consented-on": "2026-02-30"}, "token", 1, "--consented-on must be a date (YYYY-MM-DD) or unknown"),
        ({"--consented-on": "20260914"}, "token", 1, "--consented-on must be a date (YYYY-MM-DD) or unknown"),
        ({"--consented-on": "future"}, "token", 1, "the consent date is in the future"),
        ({"--region": "XX"}, "token", 2, "region must be one of NA, EU, FE"),
        ({"--email": "not-an-email"}, "token", 1, "email is not a valid address"),
        ({"--name": " "}, "token", 1, "name must be 1-200 printable characters"),
        ({}, "", 2, "no refresh token on standard input"),
        ({}, "\n\n", 2, "no refresh token on standard input"),
        ({}, "not-a-refresh-token\n", 1, "the refresh token is not an LwA refresh token"),
    ],
)
def test_import_refuses_bad_input_and_stores_nothing(stack, capsys, monkeypatch, flags, stdin, code, message):
    token = new_token(stack)
    values = dict(zip(identity()[::2], identity()[1::2]))
    values.update(flags)
    if values["--consented-on"] == "future":
        values["--consented-on"] = day(time.time() + 2 * 86400)
    ids, secrets = advertiser_ids(), secret_names()
    got, out, err = run_import(capsys, monkeypatch, stdin.replace("token", token),
                               *[x for pair in values.items() for x in pair])
    last = usage_error(err) if code == 2 else err.rstrip("\n")
    assert got == code and out == "" and last.startswith("error: ") and message in last and "\n" not in last
    assert token not in err
    assert advertiser_ids() == ids and secret_names() == secrets
    assert stack.emulator.calls == []  # refused before Login with Amazon was asked


def test_import_of_a_grant_ended_by_its_consent_date_is_refused(stack, capsys, monkeypatch, grants_end_since_2020):
    consented = time.time() - 400 * 86400
    token = new_token(stack, consented_at=consented)
    ids, secrets = advertiser_ids(), secret_names()
    code, out, err = run_import(capsys, monkeypatch, token, *identity(on=day(consented)))
    assert code == 1 and err == "error: by its consent date this grant has expired already\n"
    assert advertiser_ids() == ids and secret_names() == secrets


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bulk", "--name", "Acme"], "--bulk reads every row from standard input"),
        (["--bulk", "--consented-on", "unknown"], "--bulk reads every row from standard input"),
        (["--name", "Acme"], "import needs --email, --region, --consented-on"),
        ([], "import needs --name, --email, --region, --consented-on"),
    ],
)
def test_import_flags_are_single_or_bulk(stack, capsys, monkeypatch, argv, message):
    token = new_token(stack)
    stdin = io.StringIO(token + "\n")
    monkeypatch.setattr("sys.stdin", stdin)
    code, out, err = run(capsys, "import", *argv)
    assert code == 2 and out == "" and usage_error(err).startswith("error: ") and message in err
    assert stdin.tell() == 0 and stack.emulator.calls == []  # nothing read, nothing asked


def test_bulk_import_reports_every_row_and_goes_past_bad_ones(stack, capsys, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    good = new_token(stack, consented_at=time.time() - 20 * 86400)
    other = new_token(stack)
    stack.emulator.set_user("former-client", {})
    refused = new_token(stack, user="former-client")
    stack.emulator.revoke_grant("former-client", CLIENT_ID)

    def row(n: int, token: str, **changes) -> str:
        fields = {"name": f"Bulk {tag} {n}", "email": f"ads{n}@bulk.example", "region": "NA",
                  "consented_on": day(time.time() - 20 * 86400), "refresh_token": token, **changes}
        return json.dumps({k: v for k, v in fields.items() if v is not None})

    lines = [
        row(1, good),
        '{"name": "Bulk", "refresh_token": "' + other + '"',  # cut short
        row(3, other, email=None),
        row(4, other, notes="keep-this-private"),
        row(5, other, region="XX"),
        row(6, other, consented_on="last week"),
        row(7, other, email="nobody-at-example"),
        row(8, refused),
        "",
        row(10, other, region="FE", consented_on="unknown"),
        row(11, good),
        json.dumps([other]),
        row(13, other, name=7),
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    ids, secrets = advertiser_ids(), secret_names()
    code, out, err = run(capsys, "import", "--bulk")
    assert code == 1 and err == "error: 10 of 12 rows failed; the others were imported\n"
    for secret in (good, other, refused, "keep-this-private", "nobody-at-example", "last week", f"Bulk {tag}"):
        assert secret not in out
    results = out.splitlines()
    assert results[1:8] == [
        "row 2: error not valid JSON",
        "row 3: error missing field(s): email",
        "row 4: error unexpected field(s): a row has exactly name, email, region, consented_on, refresh_token",
        "row 5: error region must be one of NA, EU, FE",
        "row 6: error consented_on must be a date (YYYY-MM-DD) or unknown",
        "row 7: error email is not a valid address",
        "row 8: error Login with Amazon refused this refresh token (invalid_grant): it expired, was revoked, "
        "or belongs to another client",
    ]
    assert results[9:] == ["row 11: error the same refresh token as row 1, imported already",
                            "row 12: error not a JSON object", "row 13: error every field must be a string",
                            "12 rows: 2 imported, 10 failed; correct the failed rows and import only those again"]
    consented = midnight(day(time.time() - 20 * 86400))
    first = re.fullmatch(r"row 1: ok (adv-[0-9a-f]{12}) connected \(NA 2, EU 2, FE 1; grant expires (.+)\)", results[0])
    assert first and first[2].startswith(when(consented + 365 * 86400))
    tenth = re.fullmatch(r"row 10: ok (adv-[0-9a-f]{12}) connected \(NA 2, EU 2, FE 1; grant expires at the earliest "
                         r".+ \(consent date unknown: re-consent is asked before that\)\)", results[8])
    assert tenth
    assert advertiser_ids() - ids == {first[1], tenth[1]}
    assert secret_names() - secrets == {refresh_secret(first[1]), refresh_secret(tenth[1]),
                                        f"adsauth/local/advertisers/access/{first[1]}",
                                        f"adsauth/local/advertisers/access/{tenth[1]}"}


def test_bulk_import_of_good_rows_exits_zero_and_of_nothing_is_an_error(stack, capsys, monkeypatch):
    token = new_token(stack)
    row = {"name": "Solo", "email": "ads@solo.example", "region": "FE", "consented_on": "unknown", "refresh_token": token}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(row) + "\n\n"))
    code, out, err = run(capsys, "import", "--bulk")
    assert code == 0 and out.splitlines()[-1] == "1 row: 1 imported, 0 failed" and token not in out + err
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    code, out, err = run(capsys, "import", "--bulk")
    assert code == 2 and usage_error(err).startswith("error: no rows on standard input")


# --- list --expiring-within -----------------------------------------------------------------------
def test_list_expiring_within_shows_the_grants_ending_soonest_first(stack, capsys, monkeypatch, grants_end_since_2020):
    def imported(days_ago: int) -> str:
        consented = time.time() - days_ago * 86400
        code, out, err = run_import(capsys, monkeypatch, new_token(stack, consented_at=consented),
                                    *identity(name=f"Ends {days_ago}", on=day(consented)))
        assert code == 0, err
        return advertiser_of(out)

    late, soon, later = imported(340), imported(360), imported(100)  # ends in ~25, ~5, ~265 days
    revoked = imported(355)
    assert run(capsys, "revoke", revoked, "--yes")[0] == 0
    code, out, _ = run(capsys, "list", "--expiring-within", "30")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("adv-")]
    assert soon in listed and late in listed and listed.index(soon) < listed.index(late)
    assert later not in listed and revoked not in listed
    assert "GRANT EXPIRES" in out.splitlines()[0]
    assert out.splitlines()[-1].startswith(f"{len(listed)} advertisers whose grant ends within 30 days")
    code, out, _ = run(capsys, "list", "--expiring-within", "10.5")
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("adv-")]
    assert soon in listed and late not in listed
    code, out, _ = run(capsys, "list")
    assert {soon, late, later, revoked} <= {line.split()[0] for line in out.splitlines() if line.startswith("adv-")}


@pytest.mark.parametrize("days", ["0", "-5", "abc", "nan", "inf", ""])
def test_list_expiring_within_rejects_a_bad_number_of_days(stack, capsys, days):
    code, out, err = run(capsys, "list", f"--expiring-within={days}")
    assert (code, out) == (2, "")
    assert usage_error(err) == "error: --expiring-within must be a number of days above 0, e.g. 30"


@pytest.fixture
def email(stack):
    stack.enable_email()  # re-consent links are e-mailed (without SES, ops are alerted instead)
    yield
    stack.disable_email()


def test_a_reconsent_started_by_the_refresher_shows_as_pending(stack, capsys, monkeypatch, grants_end_since_2020, email):
    consented = time.time() - 350 * 86400  # its grant ends in about 15 days: inside the 30-day lead
    code, out, err = run_import(capsys, monkeypatch, new_token(stack, consented_at=consented), *identity(on=day(consented)))
    advertiser_id = advertiser_of(out)
    assert run(capsys, "refresh", advertiser_id)[0] == 0
    remember(stack.invitation_token(stack.sent_emails()[-1]))
    code, out, _ = run(capsys, "show", advertiser_id)
    assert {"status:        connected", "generation:    2", "re-consent:    pending since lead 30 days"} <= set(out.splitlines())
    assert line_of(out, "invitation:").startswith("invitation:    open until") and out.count("(reconsent)") == 1
    code, out, _ = run(capsys, "list", "--expiring-within", "30")
    assert cell(out, advertiser_id, "STATUS") == "connected+"
    assert run(capsys, "cancel", advertiser_id)[0] == 0
    code, out, _ = run(capsys, "show", advertiser_id)
    assert {"status:        connected", "re-consent:    none", "invitation:    none"} <= set(out.splitlines())


# --- the stack's outputs --------------------------------------------------------------------------
def test_stack_outputs_name_the_event_bus(stack):
    name = f"AdsAuthCli{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": name}}},
        "Outputs": {"EventBusName": {"Value": "adsauth-events"}, "TableName": {"Value": "adsauth-local"}},
    }
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    try:
        assert cli.stack_environment(name) == {"EVENT_BUS_NAME": "adsauth-events", "TABLE_NAME": "adsauth-local"}
    finally:
        cloudformation.delete_stack(StackName=name)


def test_without_ses_a_reconsent_lead_alerts_ops_and_keeps_their_link(stack, capsys, monkeypatch, grants_end_since_2020):
    consented = time.time() - 350 * 86400
    code, out, err = run_import(capsys, monkeypatch, new_token(stack, consented_at=consented), *identity(on=day(consented)))
    advertiser_id = advertiser_of(out)
    code, out, _ = run(capsys, "reinvite", advertiser_id, "--no-email")
    link = link_of(out)
    assert run(capsys, "refresh", advertiser_id)[0] == 0
    code, out, _ = run(capsys, "show", advertiser_id)
    assert "generation:    2" in out.splitlines()  # the lead replaced no link: ops' link still works
    assert browser_opens(stack, link).status_code == 302
