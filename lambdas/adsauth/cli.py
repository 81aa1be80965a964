"""The ops command line: ``adsauth invite --name … --email … [--region NA|EU|FE]`` (or
``python -m adsauth``). docs/cli.md describes every command, its JSON and the exit codes.

Settings come from the environment (the same variables the functions read). With ``--stack NAME``
(or ``ADSAUTH_STACK``) the missing ones are read from the deployed stack's outputs. ``--stack``,
``--output table|json`` and ``--debug`` go before or after the command.

Exit codes: 0 done (also: nothing to do); 1 failed or refused (an unknown advertiser, a transition
whose condition did not hold, input the domain rejects, Login with Amazon or AWS saying no, a
missing setting, a prompt answered no): one ``error: …`` line on stderr; 2 the command line itself
is wrong (the usage, then one ``error: …`` line); 130 interrupted. Never a traceback (``--debug``
adds it), and no message ever shows a token. The one exception to "nothing changed" is an
invitation e-mail SES refused: the invitation was created and its link printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Sequence

from adsauth import cli_commands as commands
from adsauth.cli_commands import LIST_STATUSES, send_invitation_email  # noqa: F401 - tests replace it here
from adsauth.cli_errors import StackNotFound, UsageError, describe
from adsauth.cli_import import IMPORT_FIELDS
from adsauth.mail import invitation_email  # noqa: F401 - looked up here at run time (tests replace it)
from adsauth.regions import Region
from adsauth.settings import Settings, get_settings

# stack output -> environment variable
STACK_OUTPUTS = {
    "TableName": "TABLE_NAME",
    "InvitationBaseUrl": "PUBLIC_BASE_URL",
    "ClientId": "LWA_CLIENT_ID",
    "ClientSecretName": "LWA_CLIENT_SECRET_NAME",
    "SecretPrefix": "SECRET_PREFIX",
    "AllowedRegions": "ALLOWED_REGIONS",
    "InvitationTtlSeconds": "INVITATION_TTL_SECONDS",
    "SesFromAddress": "SES_FROM_ADDRESS",
    "OperatorName": "OPERATOR_NAME",
    "SupportContact": "SUPPORT_CONTACT",  # shown in the invitation e-mail
    "FooterText": "FOOTER_TEXT",
    "SecretsKeyArn": "SECRETS_KMS_KEY_ID",  # `refresh` may create an access-token secret
    "EventBusName": "EVENT_BUS_NAME",  # invite, reinvite, revoke and import announce their transitions
    "TokenLayout": "TOKEN_LAYOUT",  # migrate-layout moves tokens to the deployed layout
    # a refresh run from the CLI alerts on-call as the worker would (needs_reauth, invalid_client),
    # on the topic, not in the terminal (where a log line would also break --output json)
    "AlertTopicArn": "ALERT_TOPIC_ARN",
}
OUTPUTS = ("table", "json")
INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def version() -> str:
    import adsauth

    return getattr(adsauth, "__version__", "0.12.0")


def stack_environment(stack_name: str) -> dict[str, str]:
    import boto3
    from botocore.exceptions import ClientError

    cloudformation = boto3.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":  # "Stack with id … does not exist"
            raise StackNotFound(f"no stack {stack_name!r} in {cloudformation.meta.region_name}: "
                                "check --stack (or ADSAUTH_STACK) and the AWS region") from None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return {env: outputs[key] for key, env in STACK_OUTPUTS.items() if outputs.get(key)}


def load_settings(stack: str | None) -> Settings:
    """Settings from the environment; with a stack, its outputs fill what the environment lacks
    (they go into ``os.environ`` so the adapters see the same values)."""
    if stack:
        for name, value in stack_environment(stack).items():
            os.environ.setdefault(name, value)
    return get_settings()


# --- the command line --------------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """Usage errors end like every failure: the usage, then one ``error: …`` line (exit 2)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def _region(value: str) -> str:
    name = value.strip().upper()
    if name not in Region.__members__:
        raise argparse.ArgumentTypeError("region must be one of NA, EU, FE")
    return name


def _number(convert, accept, message: str):
    """An argparse type: ``convert`` the text, and refuse it with ``message`` unless ``accept``."""
    def parse(value: str):
        try:
            number = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(message) from None
        if not accept(number):
            raise argparse.ArgumentTypeError(message)
        return number

    return parse


_valid_days = _number(float, lambda days: 0 < days <= 30, "--valid-days must be more than 0 and at most 30")  # NaN fails
_events = _number(int, lambda count: count >= 0, "--events must be a whole number, 0 or more (0: no events)")
# the range is checked by _check(): a usage error with the parser's usage line
_pack_size = _number(int, lambda size: True, "--pack-size must be a whole number from 1 to 100")


def _statuses(value: str) -> list[str]:
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in LIST_STATUSES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"--status must be one or more of {', '.join(LIST_STATUSES)}")
    return names


def _global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """``--stack``, ``--output``, ``--debug``: on the main parser with their defaults, and on each
    command with SUPPRESS, so a value given after the command wins and an absent one leaves the
    main parser's."""
    def default(value):
        return argparse.SUPPRESS if suppress else value

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--stack", default=default(os.environ.get("ADSAUTH_STACK")),
                         help="read missing settings from this CloudFormation stack's outputs (or ADSAUTH_STACK)")
    options.add_argument("--output", "-o", type=str.lower, choices=OUTPUTS, default=default("table"),
                         help="table (default) or json: one JSON document on stdout (docs/cli.md)")
    options.add_argument("--debug", action="store_true", default=default(False),
                         help="on a failure, print the traceback too")
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="adsauth", description="adsauth operations: invite advertisers, watch and revoke their grants",
                    parents=[_global_options(suppress=False)])
    parser.add_argument("--version", action="version", version=f"adsauth {version()}")
    common = [_global_options(suppress=True)]
    commands_ = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands_.add_parser(name, help=help, description=help, parents=common)
        sub.set_defaults(command_parser=sub)
        return sub

    invite = command("invite", "invite an advertiser and print the authorization link")
    invite.add_argument("--name", required=True, help="advertiser or business name")
    invite.add_argument("--email", required=True, help="where the link is sent when SES is configured")
    invite.add_argument("--region", type=_region, default="NA", metavar="{NA,EU,FE}",
                        help="picks Amazon's sign-in site (default NA; any case)")
    reinvite = command("reinvite", "a new link for a known advertiser (replaces its grant)")
    reinvite.add_argument("advertiser")
    for sub in (invite, reinvite):
        sub.add_argument("--valid-days", type=_valid_days, default=None, metavar="DAYS",
                         help="link lifetime, more than 0 and at most 30 (default from config, 7)")
        sub.add_argument("--no-email", action="store_true", help="only print the link")
    cancel = command("cancel", "withdraw an advertiser's open invitation and every sign-in it started")
    cancel.add_argument("advertiser")
    cancel.add_argument("--yes", "-y", action="store_true", help="accepted, not needed: cancelling deletes no tokens")
    listing = command("list", "all advertisers: status, token and grant expiry, profiles per region")
    listing.add_argument("--status", type=_statuses, action="append", metavar="STATUS[,STATUS]",
                         help=f"only these statuses (repeatable): {', '.join(LIST_STATUSES)}")
    listing.add_argument("--expiring-within", metavar="DAYS", default=None,
                         help="only connected advertisers whose grant ends within DAYS, soonest first")
    show = command("show", "one advertiser: grant, invitation, profiles and token events")
    show.add_argument("advertiser")
    show.add_argument("--events", type=_events, default=20, metavar="N", help="how many events to show (default 20; 0: none)")
    refresh = command("refresh", "refresh an advertiser's access token now")
    refresh.add_argument("advertiser")
    refresh.add_argument("--profiles", action="store_true", help="also list its profiles in every region now")
    revoke = command("revoke", "delete an advertiser's tokens; keep its records (asks first, or --yes)")
    revoke.add_argument("advertiser")
    revoke.add_argument("--yes", "-y", action="store_true", help="do not ask (needed without a terminal)")
    revoke.add_argument("--cause", default="operator", help="a code for the audit trail and the event, e.g. contract_ended")
    migrate = command("migrate-layout",
                      "move every advertiser's tokens to the deployed token_layout now (no gap for downstream)")
    migrate.add_argument("--to", required=True, choices=("packed", "per_advertiser"),
                         help="the layout the stack was deployed with (token_layout in cdk.json)")
    migrate.add_argument("--pack-size", type=_pack_size, metavar="N",
                         help="advertisers per new pack, 1 to 100 (default: as many as fit, at most 100)")
    migrate.add_argument("--yes", "-y", action="store_true", help="do not ask (needed without a terminal)")
    imp = command("import", "record a connected advertiser from a refresh token read on standard input (never an argument)")
    imp.add_argument("--name", help="advertiser or business name")
    imp.add_argument("--email", help="the advertiser's contact (re-consent e-mails)")
    imp.add_argument("--region", type=_region, metavar="{NA,EU,FE}", help="where the advertiser consented (any case)")
    imp.add_argument("--consented-on", metavar="YYYY-MM-DD|unknown", help="the consent's date (UTC), or unknown")
    imp.add_argument("--bulk", action="store_true",
                     help="JSON lines on standard input, each with " + ", ".join(IMPORT_FIELDS))
    return parser


COMMANDS = {
    "invite": commands.cmd_invite,
    "reinvite": commands.cmd_reinvite,
    "cancel": commands.cmd_cancel,
    "list": commands.cmd_list,
    "show": commands.cmd_show,
    "refresh": commands.cmd_refresh,
    "revoke": commands.cmd_revoke,
    "import": commands.cmd_import,
    "migrate-layout": commands.cmd_migrate_layout,
}


def _check(args: argparse.Namespace) -> None:
    """Value checks argparse cannot express as a type: usage errors, before any setting is read."""
    if args.command == "migrate-layout" and args.pack_size is not None and not 1 <= args.pack_size <= 100:
        raise UsageError("--pack-size must be from 1 to 100")
    if args.command == "list":
        args.status = [name for group in args.status or () for name in group]
        commands._expiring_within(args.expiring_within)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on a malformed command line, 0 on --help/--version
    try:
        _check(args)
        settings = load_settings(args.stack)
        return COMMANDS[args.command](args, settings)
    except UsageError as exc:
        args.command_parser.print_usage(sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`adsauth list | head -1`): not a failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's advice: no error at exit
        return 0
    except KeyboardInterrupt:
        print("error: interrupted (what was under way may have completed: `show` tells)", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 1
