"""The ops command line: ``python -m adsauth invite --name … --email … [--region NA|EU|FE]``.

Settings come from the environment (the same variables the functions read). With ``--stack NAME``
(or ``ADSAUTH_STACK``) the missing ones are read from the deployed stack's outputs.

Exit codes: 0 done; 1 refused (an unknown advertiser, a transition whose condition did not hold,
input the domain rejects, Login with Amazon saying no); 2 the command line itself is wrong
(a missing ``--yes``, a malformed ``--cause`` or ``--expiring-within``, conflicting flags, no
token on standard input). Either way nothing was changed, and no message ever shows a token;
the one exception is an invitation e-mail SES refused (exit 1, one line saying why, e.g. the SES
sandbox): the invitation was created and its link printed above the error.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import Sequence

from adsauth.adapters.notify import EmailNotSent
from adsauth.errors import AdsAuthError, AdvertiserUnknown, InvalidRequest
from adsauth.mail import invitation_email
from adsauth.models import Advertiser, AdvertiserStatus
from adsauth.regions import Region
from adsauth.settings import DAY, Settings, SettingsError, get_settings

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
    "SecretsKeyArn": "SECRETS_KMS_KEY_ID",  # `refresh` may create an access-token secret
    "EventBusName": "EVENT_BUS_NAME",  # invite, reinvite, revoke and import announce their transitions
    "TokenLayout": "TOKEN_LAYOUT",  # migrate-layout moves tokens to the deployed layout
}

CAUSE = re.compile(r"[a-z][a-z_]{0,39}")  # fullmatch; a fixed code: it goes into an EventBridge event
IMPORT_FIELDS = ("name", "email", "region", "consented_on", "refresh_token")  # a row of `import --bulk`


class UsageError(Exception):
    """The command line or standard input is malformed (exit 2); the message is fixed."""


def stack_environment(stack_name: str) -> dict[str, str]:
    import boto3

    stacks = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return {env: outputs[key] for key, env in STACK_OUTPUTS.items() if outputs.get(key)}


def load_settings(stack: str | None) -> Settings:
    """Settings from the environment; with a stack, its outputs fill what the environment lacks
    (they go into ``os.environ`` so the adapters see the same values)."""
    if stack:
        for name, value in stack_environment(stack).items():
            os.environ.setdefault(name, value)
    return get_settings()


def send_invitation_email(settings: Settings, email: str, subject: str, body: str) -> None:
    import boto3

    from adsauth.adapters.notify import SesMailer

    SesMailer(client=boto3.client("ses"), from_address=settings.ses_from_address).send(email, subject, body)


def _now() -> float:
    from adsauth import wiring

    return wiring.now()  # the functions' clock (tests travel in time with it)


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d")


def grant_text(adv: Advertiser, settings: Settings, *, importing: bool = False) -> str:
    """When the advertiser's grant ends, and what that is known from (``lifecycle.grant_for``)."""
    basis, ends = adv.grant_expiry_basis, adv.grant_expires_at
    if adv.status is AdvertiserStatus.REVOKED:
        return "- (revoked: its tokens were deleted)"
    if basis == "consent" and ends is not None and adv.consented_at is not None:
        return f"{_when(ends)} (consent {_day(adv.consented_at)}; {round((ends - adv.consented_at) / DAY)} days)"
    if basis == "token_response" and ends is not None:
        return f"{_when(ends)} (as Login with Amazon's token response said)"
    if basis == "unknown_consent" and ends is not None:
        why = "consent date unknown: re-consent is asked before that" if importing else "consent date unknown"
        return f"at the earliest {_when(ends)} ({why})"
    if basis == "none":
        return f"no end known (consent before {_day(settings.grant_expiry_from)})"
    return "-"  # never connected


def _print_invitation(settings: Settings, advertiser, token: str, ttl: int | None, no_email: bool) -> None:
    link = settings.invitation_url(token)
    expires_at = time.time() + (ttl or settings.invitation_ttl_seconds)
    print(f"advertiser: {advertiser.advertiser_id} ({advertiser.name})")
    print(f"region:     {advertiser.region.value}")
    print(f"valid until {_when(expires_at)} (completes once)")
    print(f"link:       {link}")
    if settings.ses_from_address and not no_email:
        subject, body = invitation_email(settings, advertiser.name, link, expires_at)
        try:
            send_invitation_email(settings, advertiser.email, subject, body)
        except EmailNotSent as exc:  # one fixed line (exit 1); the invitation stands
            raise type(exc)(f"{exc} The invitation was created: send the link above yourself.") from None
        print(f"emailed to  {advertiser.email}")


def _ttl(args: argparse.Namespace) -> int | None:
    if args.valid_days is None:
        return None
    if not 0 < args.valid_days <= 30:
        raise InvalidRequest("--valid-days must be more than 0 and at most 30")
    return int(args.valid_days * 86400)


def _region(value: object) -> Region:
    try:
        return Region.parse(value)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def cmd_invite(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import onboarding

    region = _region(args.region)
    ttl = _ttl(args)
    advertiser, token = onboarding().invite(name=args.name, email=args.email, region=region, ttl_seconds=ttl)
    _print_invitation(settings, advertiser, token, ttl, args.no_email)
    return 0


def cmd_reinvite(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import onboarding

    ttl = _ttl(args)
    _advertiser_or_fail(args.advertiser)
    advertiser, token = onboarding().reinvite(args.advertiser, ttl_seconds=ttl)
    _print_invitation(settings, advertiser, token, ttl, args.no_email)
    print(f"status:     {advertiser.status.value} until the advertiser completes the link")
    return 0


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    """Cancelling deletes no token (a connected advertiser's grant keeps serving) and `reinvite`
    undoes it, so unlike `revoke` it needs no --yes (accepted, so scripts may pass it to both)."""
    from adsauth.wiring import onboarding

    _advertiser_or_fail(args.advertiser)
    adv = onboarding().cancel(args.advertiser)  # TransitionRefused when no invitation is open
    kept = ": its current grant keeps serving" if adv.status is AdvertiserStatus.CONNECTED else ""
    print(f"{adv.advertiser_id}: invitation cancelled; its link and every sign-in it started no longer work "
          f"(status {adv.status.value}{kept})")
    return 0


def _profile_counts(store, advertiser_id: str) -> dict[str, int]:
    counts = {"NA": 0, "EU": 0, "FE": 0}
    for profile in store.list_profiles(advertiser_id):
        if profile.status == "active":
            counts[profile.region.value] += 1
    return counts


def _expiring_within(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        days = float(value)
    except ValueError:
        days = math.nan
    if not math.isfinite(days) or days <= 0:
        raise UsageError("--expiring-within must be a number of days above 0, e.g. 30")
    return days


def _status_cell(adv: Advertiser, now: float) -> str:
    if adv.status is AdvertiserStatus.INVITED and not adv.invitation_open(now):
        return "invitation_expired"
    if adv.status is AdvertiserStatus.CONNECTED and adv.reconsent_pending:
        return "connected+"
    return adv.status.value


def _grant_cell(adv: Advertiser) -> str:
    if adv.status is AdvertiserStatus.REVOKED:
        return "-"
    if adv.grant_expiry_basis == "none":
        return "no end"
    if adv.grant_expires_at is None:
        return "-"
    return (">=" if adv.grant_expiry_basis == "unknown_consent" else "") + _when(adv.grant_expires_at)


LEGEND = {
    "*": "* = region pending (retried by the refresher)",
    "+": "connected+ = re-consent pending (the current grant serves until the new link is completed)",
    ">=": ">= = at the earliest (consent date unknown)",
}


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import store

    within = _expiring_within(args.expiring_within)
    now = _now()
    advertisers = store().list_advertisers()
    if within is not None:
        advertisers = sorted(
            (a for a in advertisers if a.status is AdvertiserStatus.CONNECTED and a.grant_expires_at is not None
             and a.grant_expires_at - now <= within * DAY),
            key=lambda a: a.grant_expires_at or 0.0,
        )
    rows = [("ADVERTISER", "NAME", "STATUS", "TOKEN EXPIRES", "GRANT EXPIRES", "LAST REFRESH", "NA", "EU", "FE")]
    used: set[str] = set()
    for adv in advertisers:
        counts = _profile_counts(store(), adv.advertiser_id)
        pending = {r.value for r in adv.pending_regions}
        cells = [f"{counts[r]}{'*' if r in pending else ''}" for r in ("NA", "EU", "FE")]
        status, grant = _status_cell(adv, now), _grant_cell(adv)
        used.update(mark for mark, hit in (("*", pending), ("+", status.endswith("+")), (">=", grant.startswith(">="))) if hit)
        rows.append((adv.advertiser_id, adv.name[:30], status, _when(adv.token_expires_at), grant,
                     _when(adv.last_refresh_at), *cells))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    count = f"{len(rows) - 1} advertisers" + (f" whose grant ends within {within:g} days" if within is not None else "")
    print("\n" + "; ".join([count, *(LEGEND[mark] for mark in LEGEND if mark in used)]))
    return 0


def _advertiser_or_fail(advertiser_id: str):
    from adsauth.wiring import store

    advertiser = store().get_advertiser(advertiser_id)
    if advertiser is None:
        raise AdvertiserUnknown(f"no advertiser {advertiser_id!r}; `list` shows the known ones")
    return advertiser


def _invitation_text(adv: Advertiser, now: float) -> str:
    if not adv.invitation_hash:
        return "none"
    purpose = adv.invitation_purpose or "invite"
    if adv.invitation_open(now):
        return f"open until {_when(adv.invitation_expires_at)} ({purpose})"
    return f"expired {_when(adv.invitation_expires_at)} ({purpose})"


def _reconsent_text(adv: Advertiser) -> str:
    if not adv.reconsent_pending:
        return "none"
    if not adv.reconsent_leads_sent:  # a reinvite of a connected advertiser
        return "pending (an operator's reinvite; the current grant serves until it is completed)"
    leads = sorted(adv.reconsent_leads_sent, reverse=True)
    latest = f"; latest lead {leads[-1]} days" if len(leads) > 1 else ""
    return f"pending since lead {leads[0]} days{latest}"


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import store

    adv = _advertiser_or_fail(args.advertiser)
    now = _now()
    print(f"advertiser:    {adv.advertiser_id}")
    print(f"name / email:  {adv.name} <{adv.email}>")
    print(f"home region:   {adv.region.value}")
    reason = f" ({adv.status_reason})" if adv.status_reason else ""
    print(f"status:        {adv.status.value}{reason}")
    print(f"connected:     {_when(adv.connected_at)}")
    print(f"token expires: {_when(adv.token_expires_at)}")
    print(f"grant expires: {grant_text(adv, settings)}")
    print(f"generation:    {adv.generation}")
    print(f"invitation:    {_invitation_text(adv, now)}")
    print(f"re-consent:    {_reconsent_text(adv)}")
    print(f"last refresh:  {_when(adv.last_refresh_at)}{' — last error: ' + adv.last_refresh_error if adv.last_refresh_error else ''}")
    print(f"profiles read: {_when(adv.profiles_at)}; pending regions: {', '.join(r.value for r in adv.pending_regions) or 'none'}")
    print("profiles:")
    for p in sorted(store().list_profiles(adv.advertiser_id), key=lambda p: (p.region.value, p.profile_id)):
        removed = f" removed {_when(p.removed_at)}" if p.status == "removed" else ""
        print(f"  {p.region.value}  {p.profile_id:>16}  {p.country_code:<2}  {p.currency_code}  {p.account_type:<7} {p.account_name}{removed}")
    print("events (newest first):")
    for event in store().list_events(adv.advertiser_id, limit=args.events):
        print(f"  {_when(event.at)}  {event.event:<13} {event.cause}")
    return 0


def cmd_refresh(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import refresher

    _advertiser_or_fail(args.advertiser)
    result = refresher().refresh_profiles(args.advertiser) if args.profiles else refresher().refresh(args.advertiser, force=True)
    print(f"refresh:       {result.outcome}{' (' + result.reason + ')' if result.reason else ''}")
    if result.token_expires_at:
        print(f"token expires: {_when(result.token_expires_at)}{' (refresh token rotated)' if result.rotated else ''}")
    if result.profiles is not None:
        print(f"profiles:      {result.profiles}")
    return 0 if result.outcome in ("refreshed", "fresh") else 1


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import refresher

    if not CAUSE.fullmatch(args.cause):
        raise UsageError("--cause must be a code of a-z and _ (a letter first, at most 40), e.g. contract_ended")
    adv = _advertiser_or_fail(args.advertiser)
    if not args.yes:
        raise UsageError(f"revoking deletes {adv.advertiser_id}'s tokens; repeat with --yes to confirm")
    refresher().revoke(adv.advertiser_id, cause=args.cause)
    print(f"{adv.advertiser_id}: tokens deleted, status revoked (records and history kept; `reinvite` to reconnect)")
    return 0


def cmd_migrate_layout(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.migrate import migrate_layout
    from adsauth.wiring import refresher

    if args.pack_size is not None and not 1 <= args.pack_size <= 100:
        raise UsageError("--pack-size must be from 1 to 100")
    summary = migrate_layout(refresher(), args.to, pack_size=args.pack_size, progress=print)
    print(f"moved {summary['moved']} advertiser(s) to the {summary['to']} layout; packs now: {summary['packs']}")
    if summary["not_moved"]:
        print(f"not moved ({len(summary['not_moved'])}; they move at their next refresh, or run this again): "
              + ", ".join(summary["not_moved"][:20]) + (" …" if len(summary["not_moved"]) > 20 else ""))
        return 1
    return 0


# --- import: a refresh token obtained elsewhere (adsauth.cli_import) -------------------------------
def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.cli_import import run_import

    return run_import(args, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adsauth", description="adsauth operations")
    parser.add_argument("--stack", default=os.environ.get("ADSAUTH_STACK"), help="read settings from this stack's outputs")
    commands = parser.add_subparsers(dest="command", required=True)
    invite = commands.add_parser("invite", help="invite an advertiser and print the authorization link")
    invite.add_argument("--name", required=True, help="advertiser or business name")
    invite.add_argument("--email", required=True, help="where the link is sent when SES is configured")
    invite.add_argument("--region", default="NA", help="NA, EU or FE: picks Amazon's sign-in site (default NA)")
    reinvite = commands.add_parser("reinvite", help="a new link for a known advertiser (replaces its grant)")
    reinvite.add_argument("advertiser")
    for sub in (invite, reinvite):
        sub.add_argument("--valid-days", type=float, default=None, help="link lifetime (default from config, 7)")
        sub.add_argument("--no-email", action="store_true", help="only print the link")
    cancel = commands.add_parser("cancel", help="withdraw an advertiser's open invitation and every sign-in it started")
    cancel.add_argument("advertiser")
    cancel.add_argument("--yes", action="store_true", help="accepted, not needed: cancelling deletes no tokens")
    listing = commands.add_parser("list", help="all advertisers: status, token and grant expiry, profiles per region")
    listing.add_argument("--expiring-within", metavar="DAYS", default=None,
                         help="only connected advertisers whose grant ends within DAYS, soonest first")
    show = commands.add_parser("show", help="one advertiser: grant, invitation, profiles and token events")
    show.add_argument("advertiser")
    show.add_argument("--events", type=int, default=20, help="how many events to show (default 20)")
    refresh = commands.add_parser("refresh", help="refresh an advertiser's access token now")
    refresh.add_argument("advertiser")
    refresh.add_argument("--profiles", action="store_true", help="also list its profiles in every region now")
    revoke = commands.add_parser("revoke", help="delete an advertiser's tokens; keep its records")
    revoke.add_argument("advertiser")
    revoke.add_argument("--yes", action="store_true", help="confirm")
    revoke.add_argument("--cause", default="operator", help="a code for the audit trail and the event, e.g. contract_ended")
    migrate = commands.add_parser(
        "migrate-layout", help="move every advertiser's tokens to the deployed token_layout now (no gap for downstream)")
    migrate.add_argument("--to", required=True, choices=("packed", "per_advertiser"),
                         help="the layout the stack was deployed with (token_layout in cdk.json)")
    migrate.add_argument("--pack-size", type=int, help="advertisers per new pack (default: as many as fit, at most 100)")
    imp = commands.add_parser(
        "import", help="record a connected advertiser from a refresh token read on standard input (never an argument)")
    imp.add_argument("--name", help="advertiser or business name")
    imp.add_argument("--email", help="the advertiser's contact (re-consent e-mails)")
    imp.add_argument("--region", help="NA, EU or FE: where the advertiser consented")
    imp.add_argument("--consented-on", metavar="YYYY-MM-DD|unknown", help="the consent's date (UTC), or unknown")
    imp.add_argument("--bulk", action="store_true",
                     help="JSON lines on standard input, each with " + ", ".join(IMPORT_FIELDS))
    return parser


COMMANDS = {
    "invite": cmd_invite,
    "reinvite": cmd_reinvite,
    "cancel": cmd_cancel,
    "list": cmd_list,
    "show": cmd_show,
    "refresh": cmd_refresh,
    "revoke": cmd_revoke,
    "import": cmd_import,
    "migrate-layout": cmd_migrate_layout,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.stack)
        return COMMANDS[args.command](args, settings)
    except SettingsError as exc:
        print(f"error: {exc} (set it, or pass --stack NAME)", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AdsAuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
