"""The ops command line: ``python -m adsauth invite --name … --email … [--region NA|EU|FE]``.

Settings come from the environment (the same variables the functions read). With ``--stack NAME``
(or ``ADSAUTH_STACK``) the missing ones are read from the deployed stack's outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from typing import Sequence

from adsauth.errors import AdsAuthError, AdvertiserUnknown, InvalidRequest
from adsauth.regions import Region
from adsauth.settings import Settings, SettingsError, get_settings

# stack output -> environment variable
STACK_OUTPUTS = {
    "TableName": "TABLE_NAME",
    "InvitationBaseUrl": "PUBLIC_BASE_URL",
    "ClientId": "LWA_CLIENT_ID",
    "ClientSecretName": "LWA_CLIENT_SECRET_NAME",
    "SecretPrefix": "SECRET_PREFIX",
    "AllowedRegions": "ALLOWED_REGIONS",
    "InvitationTtlSeconds": "INVITATION_TTL_SECONDS",
    "SesSender": "SES_SENDER",
    "OperatorName": "OPERATOR_NAME",
    "SecretsKeyArn": "SECRETS_KMS_KEY_ID",  # `refresh` may create an access-token secret
}


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


def invitation_email(settings: Settings, name: str, link: str, expires_at: float) -> tuple[str, str]:
    until = datetime.fromtimestamp(expires_at, tz=timezone.utc).strftime("%d %B %Y, %H:%M UTC")
    subject = f"{settings.operator_name} asks for access to your Amazon Ads account"
    body = (
        f"Hello {name},\n\n"
        f"{settings.operator_name} would like to manage your Amazon Ads campaigns through the Amazon Ads API.\n\n"
        f"Open this link to connect your account:\n{link}\n\n"
        "What you will see: Amazon's own sign-in page, then a page where Amazon asks whether you allow "
        f"{settings.operator_name}'s application to access your advertising data and manage your campaigns. "
        "Click Allow to connect, or Cancel to decline. We never see your Amazon password, and you can "
        "remove the access at any time in your Amazon account settings.\n\n"
        f"The link works once and until {until}.\n"
    )
    return subject, body


def send_invitation_email(settings: Settings, email: str, subject: str, body: str) -> None:
    import boto3

    boto3.client("ses").send_email(
        Source=settings.ses_sender,
        Destination={"ToAddresses": [email]},
        Message={"Subject": {"Data": subject, "Charset": "UTF-8"}, "Body": {"Text": {"Data": body, "Charset": "UTF-8"}}},
    )


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _print_invitation(settings: Settings, advertiser, token: str, ttl: int | None, no_email: bool) -> None:
    link = settings.invitation_url(token)
    expires_at = time.time() + (ttl or settings.invitation_ttl_seconds)
    print(f"advertiser: {advertiser.advertiser_id} ({advertiser.name})")
    print(f"region:     {advertiser.region.value}")
    print(f"valid until {_when(expires_at)} (completes once)")
    print(f"link:       {link}")
    if settings.ses_sender and not no_email:
        subject, body = invitation_email(settings, advertiser.name, link, expires_at)
        send_invitation_email(settings, advertiser.email, subject, body)
        print(f"emailed to  {advertiser.email}")


def _ttl(args: argparse.Namespace) -> int | None:
    if args.valid_days is None:
        return None
    if not 0 < args.valid_days <= 30:
        raise InvalidRequest("--valid-days must be more than 0 and at most 30")
    return int(args.valid_days * 86400)


def cmd_invite(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import onboarding

    try:
        region = Region.parse(args.region)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
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


def _profile_counts(store, advertiser_id: str) -> dict[str, int]:
    counts = {"NA": 0, "EU": 0, "FE": 0}
    for profile in store.list_profiles(advertiser_id):
        if profile.status == "active":
            counts[profile.region.value] += 1
    return counts


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import store

    rows = [("ADVERTISER", "NAME", "STATUS", "TOKEN EXPIRES", "LAST REFRESH", "NA", "EU", "FE")]
    for adv in store().list_advertisers():
        counts = _profile_counts(store(), adv.advertiser_id)
        pending = {r.value for r in adv.pending_regions}
        cells = [f"{counts[r]}{'*' if r in pending else ''}" for r in ("NA", "EU", "FE")]
        rows.append((adv.advertiser_id, adv.name[:30], adv.status.value, _when(adv.token_expires_at),
                     _when(adv.last_refresh_at), *cells))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"\n{len(rows) - 1} advertisers; * = region pending (retried by the refresher)")
    return 0


def _advertiser_or_fail(advertiser_id: str):
    from adsauth.wiring import store

    advertiser = store().get_advertiser(advertiser_id)
    if advertiser is None:
        raise AdvertiserUnknown(f"no advertiser {advertiser_id!r}; `list` shows the known ones")
    return advertiser


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import store

    adv = _advertiser_or_fail(args.advertiser)
    print(f"advertiser:    {adv.advertiser_id}")
    print(f"name / email:  {adv.name} <{adv.email}>")
    print(f"home region:   {adv.region.value}")
    reason = f" ({adv.status_reason})" if adv.status_reason else ""
    print(f"status:        {adv.status.value}{reason}")
    print(f"connected:     {_when(adv.connected_at)}")
    print(f"token expires: {_when(adv.token_expires_at)}")
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

    adv = _advertiser_or_fail(args.advertiser)
    if not args.yes:
        print(f"error: revoking deletes {adv.advertiser_id}'s tokens; repeat with --yes to confirm", file=sys.stderr)
        return 2
    refresher().revoke(adv.advertiser_id, cause=args.cause)
    print(f"{adv.advertiser_id}: tokens deleted, status revoked (records and history kept; `reinvite` to reconnect)")
    return 0


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
    commands.add_parser("list", help="all advertisers: status, token expiry, profiles per region")
    show = commands.add_parser("show", help="one advertiser: profiles and token events")
    show.add_argument("advertiser")
    show.add_argument("--events", type=int, default=20, help="how many events to show (default 20)")
    refresh = commands.add_parser("refresh", help="refresh an advertiser's access token now")
    refresh.add_argument("advertiser")
    refresh.add_argument("--profiles", action="store_true", help="also list its profiles in every region now")
    revoke = commands.add_parser("revoke", help="delete an advertiser's tokens; keep its records")
    revoke.add_argument("advertiser")
    revoke.add_argument("--yes", action="store_true", help="confirm")
    revoke.add_argument("--cause", default="operator", help="recorded in the audit trail")
    return parser


COMMANDS = {
    "invite": cmd_invite,
    "reinvite": cmd_reinvite,
    "list": cmd_list,
    "show": cmd_show,
    "refresh": cmd_refresh,
    "revoke": cmd_revoke,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.stack)
        return COMMANDS[args.command](args, settings)
    except SettingsError as exc:
        print(f"error: {exc} (set it, or pass --stack NAME)", file=sys.stderr)
        return 2
    except AdsAuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
