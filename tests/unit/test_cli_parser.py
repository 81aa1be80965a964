"""The ``adsauth`` command line without a stack: --version and --help, global options on either
side of the command, regions in any case, the failure lines of AWS errors (never their messages),
and the progress line (only on a terminal)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

from adsauth import cli
from adsauth.cli_errors import describe
from adsauth.cli_output import Progress, iso, when
from adsauth.errors import InvalidRequest
from adsauth.settings import SettingsError

REPO = Path(__file__).resolve().parents[2]


def command_line(*argv: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent",
           "PYTHONPATH": os.pathsep.join([str(REPO / "lambdas"), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "adsauth", *argv], env=env, capture_output=True, text=True, timeout=60)


def test_version_and_help_need_no_setting():
    import adsauth

    done = command_line("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"adsauth {adsauth.__version__}\n", "")
    assert adsauth.__version__ == "0.12.0"
    done = command_line("--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: adsauth ")
    for command in cli.COMMANDS:
        assert command in done.stdout
        sub = command_line(command, "--help")
        assert sub.returncode == 0 and "--output" in sub.stdout and "--stack" in sub.stdout, command


def test_a_missing_setting_is_exit_1_and_one_line():
    done = command_line("list")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: environment variable TABLE_NAME is required (set it, or pass --stack NAME)\n"


def test_a_malformed_command_line_is_exit_2_with_the_usage():
    done = command_line("show")
    assert done.returncode == 2 and done.stderr.startswith("usage: adsauth show")
    assert done.stderr.splitlines()[-1] == "error: the following arguments are required: advertiser"


@pytest.mark.parametrize("argv", [
    ["--stack", "s", "--output", "json", "--debug", "list"],
    ["list", "--stack", "s", "--output", "json", "--debug"],
    ["--stack", "s", "list", "-o", "json", "--debug"],
    ["-o", "table", "list", "--output", "JSON", "--stack", "s", "--debug"],  # after the command wins
])
def test_global_options_before_or_after_the_command(argv):
    args = cli.build_parser().parse_args(argv)
    assert (args.command, args.stack, args.output, args.debug) == ("list", "s", "json", True)


def test_global_options_default_when_absent(monkeypatch):
    monkeypatch.delenv("ADSAUTH_STACK", raising=False)
    args = cli.build_parser().parse_args(["show", "adv-1"])
    assert (args.stack, args.output, args.debug, args.events) == (None, "table", False, 20)
    monkeypatch.setenv("ADSAUTH_STACK", "from-env")
    assert cli.build_parser().parse_args(["list"]).stack == "from-env"


@pytest.mark.parametrize("given, region", [("eu", "EU"), ("Fe", "FE"), ("NA", "NA"), (" na ", "NA")])
def test_regions_in_any_case(given, region):
    assert cli.build_parser().parse_args(["invite", "--name", "A", "--email", "a@b.example", "--region", given]).region == region
    assert cli.build_parser().parse_args(["import", "--region", given]).region == region


@pytest.mark.parametrize("argv, message", [
    (["invite", "--name", "A", "--email", "a@b.example", "--region", "xx"], "argument --region: region must be one of NA, EU, FE"),
    (["invite", "--name", "A", "--email", "a@b.example", "--valid-days", "31"], "--valid-days must be more than 0 and at most 30"),
    (["invite", "--name", "A", "--email", "a@b.example", "--valid-days", "nan"], "--valid-days must be more than 0"),
    (["show", "adv-1", "--events", "-1"], "--events must be a whole number, 0 or more (0: no events)"),
    (["show", "adv-1", "--events", "two"], "--events must be a whole number"),
    (["list", "--status", "bogus"], "--status must be one or more of"),
    (["list", "--output", "yaml"], "invalid choice: 'yaml'"),
])
def test_malformed_values_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith("usage: adsauth ")
    assert err.splitlines()[-1].startswith("error: ") and message in err.splitlines()[-1]


def test_statuses_are_a_comma_list_or_repeated():
    args = cli.build_parser().parse_args(["list", "--status", "connected,needs_reauth", "--status", "invitation_expired"])
    cli._check(args)
    assert args.status == ["connected", "needs_reauth", "invitation_expired"]


# --- failure lines -----------------------------------------------------------------------------
SECRET_LOOKING = "adsauth/prod/advertisers/refresh/adv-123 Atzr|not-a-real-token"


@pytest.mark.parametrize("exc, line", [
    (NoRegionError(), "no AWS region: set AWS_DEFAULT_REGION, or a region in your AWS profile (AWS_PROFILE)"),
    (NoCredentialsError(), "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"),
    (EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com/"),
     "cannot reach https://dynamodb.eu-west-1.amazonaws.com/ (EndpointConnectionError): check the network, the region "
     "and AWS_ENDPOINT_URL"),
    (ClientError({"Error": {"Code": "AccessDeniedException", "Message": SECRET_LOOKING}}, "GetSecretValue"),
     "AWS refused GetSecretValue (AccessDeniedException): the AWS credentials lack a permission"),
    (ClientError({"Error": {"Code": "SomethingNew", "Message": SECRET_LOOKING}}, "PutItem"), "AWS refused PutItem (SomethingNew)"),
    (SettingsError("environment variable X is required"), "environment variable X is required (set it, or pass --stack NAME)"),
    (InvalidRequest("email is not a valid address"), "email is not a valid address"),
    (ValueError(SECRET_LOOKING), "unexpected ValueError; run again with --debug to see where"),
])
def test_a_failure_line_names_the_cause_never_a_message_from_aws(exc, line):
    assert describe(exc) == line
    assert "Atzr|" not in describe(exc) and "adv-123" not in describe(exc)


# --- output ----------------------------------------------------------------------------------------
def test_one_date_format_per_form():
    assert when(1_796_144_400.0) == "2026-12-01 17:00 UTC" and iso(1_796_144_400.0) == "2026-12-01T17:00:00Z"
    assert (when(None), iso(None)) == ("-", None)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_and_is_cleared():
    stream = Tty()
    progress = Progress("advertisers", after=0, stream=stream)
    progress.update(1000)
    progress.update(2000)
    assert stream.getvalue() == "\rread 1,000 advertisers…\rread 2,000 advertisers…"
    progress.done()
    assert stream.getvalue().endswith("\r" + " " * len("read 2,000 advertisers…") + "\r")


def test_progress_is_silent_off_a_terminal_and_for_short_work():
    piped = io.StringIO()
    Progress("advertisers", after=0, stream=piped).update(5000)
    assert piped.getvalue() == ""
    quick = Tty()
    progress = Progress("advertisers", after=60, stream=quick)
    progress.update(5000)
    progress.done()
    assert quick.getvalue() == ""
