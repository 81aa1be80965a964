"""``make demo``: the whole onboarding story, unattended, on the local stack.

Starts moto server, the LwA/Ads emulator and the local gateway; stores the LwA client secret;
invites an advertiser with the ops CLI; follows the emailed link like a browser (cookies,
redirects, Allow on Amazon's consent page); then shows what adsauth recorded: status, profiles per
region and the access token's expiry — never a token value.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from datetime import datetime, timezone

os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # keep the demo's output readable
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


def step(text: str) -> None:
    print(f"\n== {text}")


def when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")


def main() -> int:
    started = time.monotonic()
    from local.browser import Browser
    from local.stack import CLIENT_SECRET_NAME, LocalStack

    step("starting the local stack (moto server as AWS, LwA + Ads API emulator, local API gateway)")
    with LocalStack() as stack:
        print(f"API:            {stack.base_url}")
        print(f"LwA emulator:   {stack.emulator.base_url}")
        print(f"callback URL:   {stack.callback_url}   (register this in the LwA console)")
        print(f"client secret:  stored in Secrets Manager as {CLIENT_SECRET_NAME}")

        step("ops: python -m adsauth invite --name 'Acme Outdoor' --email ads@acme.example --region EU")
        from adsauth import cli

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(["invite", "--name", "Acme Outdoor", "--email", "ads@acme.example", "--region", "EU"])
        print(out.getvalue().rstrip())
        if code != 0:
            return code
        fields = dict(line.split(":", 1) for line in out.getvalue().splitlines() if ":" in line[:12])
        advertiser_id = fields["advertiser"].strip()
        link = fields["link"].strip()

        step("advertiser: opens the link, signs in at Amazon, clicks Allow")
        browser = Browser()
        consent = browser.open(link)
        print(f"GET  /connect/…   -> {browser.history[0].status_code} to Amazon's authorize page ({consent.status_code})")
        if consent.status_code != 200 or "allow" not in consent.text.lower():
            print("error: the consent page did not appear", file=sys.stderr)
            return 1
        final = browser.follow(browser.click(consent, "allow"))
        hops = " -> ".join(str(r.status_code) for r in browser.history[2:])
        print(f"Allow             -> {hops}")
        print(f"landed on:        {final.url.split('?')[0]}")
        print(f"page says:        {_title(final.text)}")

        step("what adsauth recorded")
        ok = show_advertiser(advertiser_id)
    print(f"\ndemo finished in {time.monotonic() - started:.1f} s; everything stopped")
    return 0 if ok else 1


def _title(html: str) -> str:
    start = html.find('<h1 id="title">')
    return html[start + 15 : html.find("</h1>", start)] if start >= 0 else "?"


def show_advertiser(advertiser_id: str) -> bool:
    import boto3

    from adsauth.settings import get_settings
    from adsauth.wiring import onboarding

    store = onboarding().store
    advertiser = store.get_advertiser(advertiser_id)
    print(f"advertiser:       {advertiser.advertiser_id} ({advertiser.name}), home region {advertiser.region.value}")
    print(f"status:           {advertiser.status.value}")
    profiles = store.list_profiles(advertiser_id)
    for region in ("NA", "EU", "FE"):
        mine = [p for p in profiles if p.region.value == region]
        pending = " (pending: will be retried)" if region in {r.value for r in advertiser.pending_regions} else ""
        print(f"profiles {region}:      {len(mine)}{pending}")
        for p in sorted(mine, key=lambda p: p.profile_id):
            print(f"    {p.profile_id:>16}  {p.country_code}  {p.currency_code}  {p.account_type:<7} {p.account_name}")
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=f"{get_settings().secret_prefix}access/{advertiser_id}")
    expires_at = json.loads(secret["SecretString"])["expires_at"]
    print(f"access token:     stored in Secrets Manager, expires {when(expires_at)} "
          f"(in {int((expires_at - time.time()) // 60)} min); value not shown")
    regions_seen = {p.region.value for p in profiles}
    return advertiser.status.value == "connected" and regions_seen == {"NA", "EU", "FE"}


if __name__ == "__main__":
    sys.exit(main())
