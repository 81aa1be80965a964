"""The ``adsauth`` command's conventions against the local stack: one ``error:`` line and exit 1
for every failure (never a traceback), usage errors exit 2, JSON for every command, global options
on either side of the command, case-insensitive regions, an idempotent ``revoke``, prompts, and a
``list`` that pages the index with a bounded number of DynamoDB calls."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from adsauth import cli, cli_commands, wiring
from tests.integration.test_cli import (  # noqa: F401 (email: a fixture)
    advertiser_of, email, link_of, new_token, refresh_secret, run, tokens, usage_error,
)
from tests.stack_fixtures import secret_names

REPO = Path(__file__).resolve().parents[2]
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def adsauth(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m adsauth`` in a process of its own (its exit code and streams as a shell sees them)."""
    env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO / "lambdas"), str(REPO)])}
    done = subprocess.run([sys.executable, "-m", "adsauth", *argv], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout, done.stderr


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.rstrip("\n")


def stack_env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


NO_AWS_FILES = {"AWS_CONFIG_FILE": "/nonexistent/adsauth-test", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/adsauth-test",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": None}


@pytest.mark.parametrize("argv, changes, message", [
    (["list", "--stack", "nope"], {}, "error: no stack 'nope' in us-east-1: check --stack (or ADSAUTH_STACK) and the AWS region"),
    (["list"], {"AWS_DEFAULT_REGION": None, "AWS_REGION": None, **NO_AWS_FILES},
     "error: no AWS region: set AWS_DEFAULT_REGION, or a region in your AWS profile (AWS_PROFILE)"),
    (["list"], {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None, **NO_AWS_FILES},
     "error: no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"),
    (["list"], {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"},
     "error: cannot reach http://127.0.0.1:9/ (EndpointConnectionError): check the network, the region and AWS_ENDPOINT_URL"),
    (["list"], {"TABLE_NAME": "adsauth-no-such-table"},
     "error: AWS refused Query (ResourceNotFoundException): check the region and TABLE_NAME, or pass --stack"),
    (["show", "adv-000000000000"], {"TABLE_NAME": None},
     "error: environment variable TABLE_NAME is required (set it, or pass --stack NAME)"),
    (["show", "adv-000000000000"], {}, "error: no advertiser 'adv-000000000000'; `list` shows the known ones"),
])
def test_every_failure_is_one_error_line_and_exit_1(stack, argv, changes, message):
    code, out, err = adsauth(*argv, env=stack_env(**changes))
    assert (code, out) == (1, "") and one_error_line(err) == message


def test_debug_adds_the_traceback(stack):
    code, out, err = adsauth("list", "--stack", "nope", "--debug", env=stack_env())
    assert code == 1 and "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("error: no stack 'nope'")


def test_an_interrupt_is_one_line_and_exit_130(stack, capsys, monkeypatch):
    def interrupted(args, settings):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "list", interrupted)
    code, out, err = run(capsys, "list")
    assert code == cli.INTERRUPTED == 130 and out == "" and one_error_line(err).startswith("error: interrupted")


@pytest.mark.parametrize("argv, message", [
    (["show", "adv-000000000000", "--events", "-1"], "--events must be a whole number, 0 or more"),
    (["invite", "--name", "A", "--email", "a@b.example", "--region", "xx"], "region must be one of NA, EU, FE"),
    (["list", "--status", "connected,bogus"], "--status must be one or more of invited, connected"),
    (["list", "--output", "yaml"], "invalid choice: 'yaml'"),
])
def test_usage_errors_exit_2_with_the_usage(stack, argv, message):
    code, out, err = adsauth(*argv, env=stack_env())
    assert code == 2 and out == "" and message in usage_error(err)


# --- global options, regions ---------------------------------------------------------------------
def test_global_options_go_before_or_after_the_command(stack, capsys):
    before = json.loads(run(capsys, "--output", "json", "list")[1])
    after = json.loads(run(capsys, "list", "-o", "JSON")[1])
    assert before.keys() == after.keys() == {"advertisers", "count"}
    code, _, err = run(capsys, "list", "--stack", "nope")  # --stack after the command is read
    assert code == 1 and err.startswith("error: no stack 'nope'")
    code, _, err = run(capsys, "--stack", "nope", "list")
    assert code == 1 and err.startswith("error: no stack 'nope'")


def test_a_region_in_any_case(stack, capsys):
    code, out, _ = run(capsys, "invite", "--name", "Lower", "--email", "ads@lower.example", "--region", "eu", "-o", "json")
    doc = json.loads(out)
    link_of("link: " + doc["link"])
    assert code == 0 and doc["region"] == "EU"
    assert wiring.store().get_advertiser(doc["advertiser_id"]).region.value == "EU"


# --- JSON of every command -----------------------------------------------------------------------
def test_invite_reinvite_cancel_in_json(stack, capsys):
    code, out, err = run(capsys, "invite", "--name", "Json", "--email", "ads@json.example", "--output", "json")
    doc = json.loads(out)
    assert code == 0 and err == ""
    assert set(doc) == {"advertiser_id", "name", "email", "region", "status", "link", "expires_at", "emailed_to"}
    link_of("link: " + doc["link"])
    assert (doc["status"], doc["region"], doc["emailed_to"]) == ("invited", "NA", None) and ISO.fullmatch(doc["expires_at"])
    assert doc["link"].startswith(f"{stack.base_url}/connect/")
    code, out, _ = run(capsys, "reinvite", doc["advertiser_id"], "--no-email", "-o", "json")
    again = json.loads(out)
    link_of("link: " + again["link"])
    assert code == 0 and again["advertiser_id"] == doc["advertiser_id"] and again["link"] != doc["link"]
    assert again["reconsent_pending"] is False
    code, out, _ = run(capsys, "cancel", doc["advertiser_id"], "-o", "json")
    assert code == 0 and json.loads(out) == {"advertiser_id": doc["advertiser_id"], "cancelled": True, "status": "cancelled"}


def test_list_show_refresh_revoke_in_json(stack, capsys, flow):
    f = flow("EU")
    f.consent()
    f.callback()
    code, out, _ = run(capsys, "list", "-o", "json")
    listed = json.loads(out)
    assert code == 0 and listed["count"] == len(listed["advertisers"])
    row = next(a for a in listed["advertisers"] if a["advertiser_id"] == f.advertiser_id)
    assert row["status"] == "connected" and row["profile_counts"] == {"NA": 2, "EU": 2, "FE": 1}
    assert ISO.fullmatch(row["token_expires_at"]) and ISO.fullmatch(row["grant"]["expires_at"])
    assert row["grant"]["basis"] == "consent" and row["invitation"] is None and row["pending_regions"] == []

    code, out, _ = run(capsys, "show", f.advertiser_id, "--output", "json")
    shown = json.loads(out)
    assert code == 0 and set(row) <= set(shown)
    assert {"connected_at", "generation", "profiles", "events", "profiles_at", "reconsent_leads_sent"} <= set(shown)
    assert len(shown["profiles"]) == 5 and {p["region"] for p in shown["profiles"]} == {"NA", "EU", "FE"}
    assert shown["events"] and all(ISO.fullmatch(e["at"]) for e in shown["events"])

    code, out, _ = run(capsys, "refresh", f.advertiser_id, "--profiles", "-o", "json")
    refreshed = json.loads(out)
    assert code == 0 and refreshed["outcome"] in ("refreshed", "fresh")
    assert refreshed["profiles"] == {"counts": {"NA": 2, "EU": 2, "FE": 1}, "regions_ok": ["EU", "FE", "NA"],
                                     "regions_pending": []}

    code, out, _ = run(capsys, "revoke", f.advertiser_id, "--yes", "-o", "json")
    revoked = json.loads(out)
    assert code == 0 and {k: revoked[k] for k in ("advertiser_id", "revoked", "changed", "tokens_deleted")} == {
        "advertiser_id": f.advertiser_id, "revoked": True, "changed": True, "tokens_deleted": True}
    for document in (listed, shown, refreshed, revoked):
        assert "Atza|" not in json.dumps(document) and "Atzr|" not in json.dumps(document)


def test_refresh_profiles_prints_counts_per_region(stack, capsys, flow):
    f = flow()
    f.consent()
    f.callback()
    code, out, _ = run(capsys, "refresh", f.advertiser_id, "--profiles")
    assert code == 0 and "profiles:      NA 2, EU 2, FE 1" in out.splitlines() and "ProfilesResult" not in out


def test_show_events_0_shows_no_events(stack, capsys, flow):
    f = flow()
    f.consent()
    f.callback()
    code, out, err = run(capsys, "show", f.advertiser_id, "--events", "0")
    assert (code, err) == (0, "") and "events:        not shown (--events 0)" in out.splitlines()
    code, out, _ = run(capsys, "show", f.advertiser_id, "--events", "0", "-o", "json")
    assert code == 0 and json.loads(out)["events"] == []


def test_import_in_json(stack, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(new_token(stack) + "\n"))
    code, out, err = run(capsys, "import", "--name", "Imp", "--email", "ads@imp.example", "--region", "fe",
                         "--consented-on", "unknown", "-o", "json")
    doc = json.loads(out)
    assert code == 0, err
    assert (doc["status"], doc["region"], doc["profile_counts"]) == ("connected", "FE", {"NA": 2, "EU": 2, "FE": 1})
    assert doc["grant"]["basis"] == "unknown_consent" and "Atzr|" not in out
    row = {"name": "Bulk", "email": "ads@bulk.example", "region": "na", "consented_on": "unknown",
           "refresh_token": new_token(stack)}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(row) + "\nnot json\n"))
    code, out, err = run(capsys, "import", "--bulk", "-o", "json")
    doc = json.loads(out)
    assert code == 1 and one_error_line(err) == "error: 1 of 2 rows failed; the others were imported"
    assert (doc["imported"], doc["failed"]) == (1, 1)
    assert doc["rows"][0]["ok"] is True and doc["rows"][0]["region"] == "NA"
    assert doc["rows"][1] == {"row": 2, "ok": False, "error": "not valid JSON"}
    assert row["refresh_token"] not in out + err


def test_migrate_layout_in_json(stack, capsys, flow):
    from tests.integration.test_migrate_layout import retire_leftovers

    f = flow()
    f.consent()
    f.callback()
    retire_leftovers({f.advertiser_id})  # earlier tests' grants, which the emulator forgot
    code, out, err = run(capsys, "migrate-layout", "--to", "packed", "--yes", "-o", "json")
    doc = json.loads(out)
    assert code == 0, err
    assert (doc["to"], doc["moved"], doc["not_moved"], doc["outcomes"]) == ("packed", 1, [], {"refreshed": 1})
    assert isinstance(doc["packs"], int) and tokens(f.advertiser_id)["where"] == "pack"
    assert all(line.startswith("pack ") for line in err.splitlines())  # progress goes to stderr in JSON


# --- revoke: idempotent, and it says what it did ------------------------------------------------
def test_revoking_twice_changes_nothing_the_second_time(stack, capsys, flow):
    f = flow()
    f.consent()
    f.callback()
    code, out, _ = run(capsys, "revoke", f.advertiser_id, "--yes")
    assert code == 0 and out.startswith(f"{f.advertiser_id}: revoked; deleted its refresh and access tokens")
    item, events = f.advertiser(), wiring.store().list_events(f.advertiser_id)
    code, out, err = run(capsys, "revoke", f.advertiser_id)  # no --yes needed: nothing to change
    assert (code, err) == (0, "")
    assert re.fullmatch(rf"{f.advertiser_id}: already revoked on \d{{4}}-\d\d-\d\d \d\d:\d\d UTC; nothing deleted\n", out)
    assert f.advertiser() == item and wiring.store().list_events(f.advertiser_id) == events
    code, out, _ = run(capsys, "revoke", f.advertiser_id, "-o", "json")
    doc = json.loads(out)
    assert code == 0 and (doc["revoked"], doc["changed"], doc["tokens_deleted"]) == (True, False, False)
    assert ISO.fullmatch(doc["revoked_at"])


def test_revoking_a_never_connected_advertiser_says_so_and_kills_its_link(stack, capsys, browser):
    code, out, _ = run(capsys, "invite", "--name", "Never", "--email", "ads@never.example")
    link, advertiser_id = link_of(out), advertiser_of(out)
    code, out, _ = run(capsys, "revoke", advertiser_id, "--yes")
    assert code == 0 and out == (f"{advertiser_id}: revoked; it had no tokens (never connected); its invitation link "
                                 "no longer works (records and history kept; `reinvite` to reconnect)\n")
    assert browser().get(link).status_code == 410


def test_a_revoke_interrupted_before_deleting_is_finished_by_the_next(stack, capsys, flow, monkeypatch):
    f = flow()
    f.consent()
    f.callback()
    def cut(self, advertiser_id):
        raise ConnectionError("the connection dropped")

    monkeypatch.setattr(type(wiring.vault()), "delete_tokens", cut)
    code, _, err = run(capsys, "revoke", f.advertiser_id, "--yes")
    assert code == 1 and one_error_line(err).startswith("error: a network call failed (ConnectionError)")
    assert f.advertiser()["status"] == "revoked" and refresh_secret(f.advertiser_id) in secret_names()
    monkeypatch.undo()
    code, out, _ = run(capsys, "revoke", f.advertiser_id, "--yes")
    assert code == 0 and "deleted its refresh and access tokens" in out
    assert refresh_secret(f.advertiser_id) not in secret_names() and tokens(f.advertiser_id) is None


# --- prompts --------------------------------------------------------------------------------------
@pytest.fixture
def terminal(monkeypatch):
    """stdin and stderr are a terminal; ``answer`` is what the operator types."""
    def answer(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))

    monkeypatch.setattr(cli_commands, "_isatty", lambda stream: True)
    return answer


def test_revoke_asks_on_a_terminal_and_no_changes_nothing(stack, capsys, flow, terminal):
    f = flow()
    f.consent()
    f.callback()
    terminal("n\n")
    code, out, err = run(capsys, "revoke", f.advertiser_id)
    assert code == 1 and out == ""
    assert err.startswith(f"revoke {f.advertiser_id} (") and err.endswith(" and delete its tokens? [y/N] "
                                                                          "error: not confirmed; nothing changed\n")
    assert f.advertiser()["status"] == "connected" and tokens(f.advertiser_id) is not None
    terminal("y\n")
    code, out, err = run(capsys, "revoke", f.advertiser_id)
    assert code == 0 and "[y/N] " in err and f.advertiser()["status"] == "revoked"


def test_without_a_terminal_a_destructive_command_needs_yes(stack, capsys, flow):
    f = flow()
    f.consent()
    f.callback()
    code, out, err = run(capsys, "revoke", f.advertiser_id)
    assert code == 2 and out == "" and "pass --yes to confirm" in usage_error(err)
    code, out, err = run(capsys, "migrate-layout", "--to", "packed")
    assert code == 2 and "pass --yes to confirm" in usage_error(err)
    assert f.advertiser()["status"] == "connected"


# --- list: paging, the status filter, a bounded number of calls -----------------------------------
class DynamoCalls:
    def __init__(self) -> None:
        self.operations: list[str] = []

    def __call__(self, model, **_kwargs) -> None:
        self.operations.append(model.name)


@pytest.fixture
def dynamo_calls():
    calls = DynamoCalls()
    events = wiring.table().meta.client.meta.events
    events.register("before-call.dynamodb", calls)
    yield calls
    events.unregister("before-call.dynamodb", calls)


def invited(capsys, tag: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        code, out, _ = run(capsys, "invite", "--name", f"Page {tag} {i}", "--email", f"ads{i}@page.example")
        link_of(out)
        ids.append(advertiser_of(out))
    return ids


def test_list_reads_the_index_page_by_page_and_filters_by_status(stack, capsys, monkeypatch, dynamo_calls):
    tag = uuid.uuid4().hex[:6]
    ids = invited(capsys, tag, 5)
    run(capsys, "cancel", ids[0])
    monkeypatch.setattr(cli_commands, "LIST_PAGE_SIZE", 2)
    dynamo_calls.operations.clear()
    code, out, _ = run(capsys, "list", "-o", "json")
    listed = {a["advertiser_id"]: a for a in json.loads(out)["advertisers"]}
    assert code == 0 and set(ids) <= set(listed)
    assert dynamo_calls.operations.count("Query") >= 1 + (len(listed) + 1) // 2  # pages of 2, and the profiles
    code, out, _ = run(capsys, "list", "--status", "cancelled", "-o", "json")
    cancelled = {a["advertiser_id"] for a in json.loads(out)["advertisers"]}
    assert ids[0] in cancelled and not cancelled & set(ids[1:])
    assert all(a["status"] == "cancelled" for a in json.loads(out)["advertisers"])
    code, out, _ = run(capsys, "list", "--status", "invited", "--status", "cancelled")
    shown = {line.split()[0] for line in out.splitlines() if line.startswith("adv-")}
    assert set(ids) <= shown and "with status cancelled, invited" in out.splitlines()[-1]


def test_list_makes_the_same_number_of_calls_for_more_advertisers(stack, capsys, flow, monkeypatch, dynamo_calls):
    monkeypatch.setattr(cli_commands, "LIST_PAGE_SIZE", 1000)
    invited(capsys, uuid.uuid4().hex[:6], 1)  # whatever ran before: at least one advertiser to list
    dynamo_calls.operations.clear()
    run(capsys, "list")
    before = list(dynamo_calls.operations)
    dynamo_calls.operations.clear()
    invited(capsys, uuid.uuid4().hex[:6], 3)
    for _ in range(3):
        f = flow()
        f.consent()
        f.callback()  # five profiles each
    dynamo_calls.operations.clear()
    code, out, _ = run(capsys, "list")
    assert code == 0 and dynamo_calls.operations == before == ["Query", "Query"]


def test_list_counts_profiles_written_before_they_were_in_the_index(stack, capsys, flow, dynamo_calls):
    """A profile item from before byKind carried profiles has no kind attributes: ``list`` counts
    that advertiser's profiles with its own query instead of showing 0."""
    from boto3.dynamodb.conditions import Key

    f = flow()
    f.consent()
    f.callback()
    table = wiring.table()
    items = table.query(KeyConditionExpression=Key("pk").eq(f"ADV#{f.advertiser_id}")
                        & Key("sk").begins_with("PROFILE#"))["Items"]
    assert items and all("kind_pk" in item for item in items)
    for item in items:  # as an older release wrote them
        table.update_item(Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="REMOVE kind_pk, kind_sk")
    dynamo_calls.operations.clear()
    code, out, _ = run(capsys, "list", "-o", "json")
    row = next(a for a in json.loads(out)["advertisers"] if a["advertiser_id"] == f.advertiser_id)
    assert code == 0 and row["profile_counts"] == {"NA": 2, "EU": 2, "FE": 1}
    assert dynamo_calls.operations.count("Query") >= 3  # the two listing queries, and this advertiser's own


def test_an_invitation_to_email_without_an_operator_name_is_refused_before_it_exists(stack, capsys, email):
    """The e-mail names the operator: without OPERATOR_NAME (an older stack's outputs) the invite
    is refused with one line, and no advertiser or invitation is created; --no-email still works."""
    before = {a["advertiser_id"] for a in json.loads(run(capsys, "list", "-o", "json")[1])["advertisers"]}
    name = os.environ.pop("OPERATOR_NAME")
    wiring.reset()
    try:
        code, out, err = run(capsys, "invite", "--name", "Nameless", "--email", "ads@nameless.example")
        assert (code, out) == (1, "") and one_error_line(err).startswith("error: environment variable OPERATOR_NAME is required")
        after = {a["advertiser_id"] for a in json.loads(run(capsys, "list", "-o", "json")[1])["advertisers"]}
        assert after == before
        code, out, _ = run(capsys, "invite", "--name", "Nameless", "--email", "ads@nameless.example", "--no-email")
        assert code == 0 and link_of(out)
    finally:
        os.environ["OPERATOR_NAME"] = name
        wiring.reset()


def test_revoking_again_after_a_reinvite_kills_the_link_and_deletes_nothing(stack, capsys, flow):
    """Revoked, then reinvited (still revoked, with an open link): the next revoke cancels the
    link and says no token was left, as the tokens went with the first revoke."""
    f = flow()
    f.consent()
    f.callback()
    assert run(capsys, "revoke", f.advertiser_id, "--yes")[0] == 0
    code, out, _ = run(capsys, "reinvite", f.advertiser_id, "--no-email")
    assert code == 0 and f.advertiser()["status"] == "revoked"
    code, out, _ = run(capsys, "revoke", f.advertiser_id, "--yes", "-o", "json")
    revoked = json.loads(out)
    assert code == 0 and (revoked["changed"], revoked["tokens_deleted"], revoked["invitation_cancelled"]) == (True, False, True)
    code, out, _ = run(capsys, "show", f.advertiser_id, "-o", "json")
    assert json.loads(out)["invitation"] is None or json.loads(out)["invitation"]["open"] is False
    code, out, _ = run(capsys, "revoke", f.advertiser_id, "--yes")
    assert code == 0 and "already revoked on" in out and "nothing deleted" in out
