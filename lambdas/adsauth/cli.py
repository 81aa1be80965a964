"""The ops command line: ``python -m adsauth invite --name … --email … [--region NA|EU|FE]``.

Settings come from the environment (the same variables the functions read). With ``--stack NAME``
(or ``ADSAUTH_STACK``) the missing ones are read from the deployed stack's outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from typing import Sequence

from adsauth.errors import AdsAuthError
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


def cmd_invite(args: argparse.Namespace, settings: Settings) -> int:
    from adsauth.wiring import onboarding

    try:
        region = Region.parse(args.region)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ttl = int(args.valid_days * 86400) if args.valid_days else None
    advertiser, token = onboarding().invite(name=args.name, email=args.email, region=region, ttl_seconds=ttl)
    link = settings.invitation_url(token)
    expires_at = advertiser.created_at + (ttl or settings.invitation_ttl_seconds)
    until = datetime.fromtimestamp(expires_at, tz=timezone.utc).isoformat(timespec="seconds")
    print(f"advertiser: {advertiser.advertiser_id}")
    print(f"region:     {region.value}")
    print(f"valid until {until} (completes once)")
    print(f"link:       {link}")
    if settings.ses_sender and not args.no_email:
        subject, body = invitation_email(settings, advertiser.name, link, expires_at)
        send_invitation_email(settings, advertiser.email, subject, body)
        print(f"emailed to  {advertiser.email}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adsauth", description="adsauth operations")
    parser.add_argument("--stack", default=os.environ.get("ADSAUTH_STACK"), help="read settings from this stack's outputs")
    commands = parser.add_subparsers(dest="command", required=True)
    invite = commands.add_parser("invite", help="invite an advertiser and print the authorization link")
    invite.add_argument("--name", required=True, help="advertiser or business name")
    invite.add_argument("--email", required=True, help="where the link is sent when SES is configured")
    invite.add_argument("--region", default="NA", help="NA, EU or FE: picks Amazon's sign-in site (default NA)")
    invite.add_argument("--valid-days", type=float, default=None, help="link lifetime (default from config, 7)")
    invite.add_argument("--no-email", action="store_true", help="only print the link")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.stack)
        return {"invite": cmd_invite}[args.command](args, settings)
    except SettingsError as exc:
        print(f"error: {exc} (set it, or pass --stack NAME)", file=sys.stderr)
        return 2
    except AdsAuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
