"""``make demo``: the whole onboarding story, unattended, on the local stack.

Starts moto server, the LwA/Ads emulator and the local gateway; stores the LwA client secret;
invites an advertiser with the ops CLI; follows the emailed link like a browser (cookies,
redirects, Allow on Amazon's consent page); then shows what adsauth recorded: status, profiles per
region, the access token's expiry and the grant's 365-day end — never a token value. Then a
refresh cycle (read as downstream reads, ``adsauth.client``; in the packed layout, the stack's
default, it moves the advertiser's tokens into a pack's shared secrets, and the demo says where they
are), a downstream call, and the year's end: 30 days before the grant ends the refresher e-mails a
re-consent link, the advertiser completes it while a downstream reader keeps reading, and no read
fails. The lifecycle events a consumer's EventBridge rule received are listed.
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

    from adsauth import wiring

    clock = ShiftClock()
    wiring.clock = clock  # the functions' notion of "now", moved forward for the refresh cycle
    from adsauth import client

    client._clock = clock  # and the downstream client's
    step("starting the local stack (moto server as AWS, LwA + Ads API emulator, local API gateway)")
    with LocalStack(clock=clock) as stack:
        stack.enable_email()  # SES (moto) with a verified sender: invitations and re-consents are e-mailed
        stack.emulator.grant_lifetime_seconds = 365 * 86400  # Amazon's 2026 grants end after a year
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
        advertiser_id = fields["advertiser"].split()[0]
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

        step("49 minutes later: the scheduled refresher (EventBridge → dispatcher → SQS → worker)")
        ok = refresh_cycle(stack, clock, advertiser_id) and ok

        step("a downstream Lambda: adsauth.client.AdsApiSession(profile).list_profiles()")
        ok = downstream_call(advertiser_id) and ok

        step("335 days later: 30 days before the grant ends, the refresher starts a re-consent")
        ok = reconsent(stack, clock, advertiser_id) and ok

        step("lifecycle events a consumer's EventBridge rule received (source adsauth → SQS)")
        ok = show_events(stack, advertiser_id) and ok
    print(f"\ndemo finished in {time.monotonic() - started:.1f} s; everything stopped")
    return 0 if ok else 1


class ShiftClock:
    """Real time plus an offset: lets the demo show what happens 50 minutes later."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _access_token(advertiser_id: str):
    """The access token as a downstream Lambda reads it (from Secrets Manager, not the cache)."""
    from adsauth.client import clear_cache, get_token_info

    clear_cache()
    return get_token_info(advertiser_id=advertiser_id)


def _where(advertiser_id: str) -> str:
    """Where the advertiser's tokens are stored (``local.stack.stored_tokens``), no value."""
    from local.stack import stored_tokens

    from adsauth.settings import get_settings

    found, prefix = stored_tokens(advertiser_id), get_settings().secret_prefix
    if found is None:
        return "nowhere (no secret holds them)"
    if found["where"] == "own":
        return f"its own secrets {prefix}{{refresh,access}}/{advertiser_id}"
    shared = found["members"]
    return (f"pack {found['pack']}: the shared secrets {prefix}{{refresh,access}}/packs/{found['pack']} "
            f"(shared by {shared} advertiser{'s' if shared != 1 else ''})")


def refresh_cycle(stack, clock: ShiftClock, advertiser_id: str) -> bool:
    before = _access_token(advertiser_id)
    clock.offset += 49 * 60
    remaining = int(before.remaining_seconds(clock()) // 60)
    print(f"token expires:    {when(before.expires_at)} — {remaining} min left, inside the 12-minute lead window")
    print(f"tokens stored in: {_where(advertiser_id)}")
    dispatched, report = stack.scheduler().tick()
    after = _access_token(advertiser_id)
    moved = int((after.expires_at - before.expires_at) // 60)
    replaced = after.value != before.value
    print(f"dispatcher:       {dispatched} advertiser(s) due, queued; worker processed {report.processed}, failed {report.failed}")
    print(f"token expires:    {when(after.expires_at)} (moved forward {moved} min)")
    print(f"access token:     {'replaced by a new one' if replaced else 'NOT replaced'} (values not shown), "
          "read as downstream reads it (adsauth.client)")
    print(f"tokens stored in: {_where(advertiser_id)}")
    print(f"LwA refresh calls so far: {stack.emulator.count('token', grant_type='refresh_token')}")
    again, _ = stack.scheduler().tick()
    print(f"next minute:      {again} due — nothing to refresh, no LwA call")
    return replaced and moved > 0 and again == 0


def reconsent(stack, clock: ShiftClock, advertiser_id: str) -> bool:
    import threading

    from local.browser import Browser

    from adsauth.client import clear_cache, get_access_token
    from adsauth.wiring import store

    before = store().get_advertiser(advertiser_id)
    clock.offset = before.grant_expires_at - 30 * 86400 + 60 - time.time()
    sent = len(stack.sent_emails())
    dispatched, report = stack.scheduler().tick()
    adv = store().get_advertiser(advertiser_id)
    mails = stack.sent_emails()[sent:]
    print(f"dispatcher:       {dispatched} due; worker processed {report.processed} (token refreshed, re-consent started)")
    print(f"status:           {adv.status.value}, re-consent pending: {adv.reconsent_pending}, "
          f"invitation generation {adv.generation} (older links no longer work)")
    if len(mails) != 1:
        print("error: no re-consent e-mail was sent", file=sys.stderr)
        return False
    mail = mails[0]
    print(f"e-mailed to:      {mail.destinations['ToAddresses'][0]} — \"{mail.subject}\"")
    link = next(w for w in mail.body.split() if "/connect/" in w)
    reads, failures, stop = [], [], threading.Event()

    def downstream():  # a Lambda reading a token all the time, never from its cache
        while not stop.is_set():
            clear_cache()
            try:
                get_access_token(advertiser_id=advertiser_id)
                reads.append(1)
            except Exception as exc:  # noqa: BLE001 - counted
                failures.append(type(exc).__name__)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 20
        while len(reads) + len(failures) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    reader = threading.Thread(target=downstream)
    reader.start()
    try:
        wait_for(3)  # reading before the advertiser opens the link ...
        browser = Browser()
        consent = browser.open(link)
        final = browser.follow(browser.click(consent, "allow"))
        wait_for(len(reads) + len(failures) + 3)  # ... through the completion, and after it
    finally:
        stop.set()
        reader.join(30)
    after = store().get_advertiser(advertiser_id)
    print(f"advertiser:       opens the link, clicks Allow → {_title(final.text)!r}")
    print(f"downstream reads: {len(reads)} before, during and after the re-consent, {len(failures)} failed (no gap)")
    print(f"grant expires:    {when(before.grant_expires_at)} → {when(after.grant_expires_at)} "
          f"(365 days after the new consent); re-consent pending: {after.reconsent_pending}")
    print(f"tokens stored in: {_where(advertiser_id)} (the new grant's)")
    return (final.url.endswith("/result/connected") and not failures and reads != []
            and after.grant_expires_at > before.grant_expires_at and not after.reconsent_pending)


def show_events(stack, advertiser_id: str) -> bool:
    stack.scheduler().dispatch()  # the scheduled run also relays whatever the outbox still holds
    received = [e for e in stack.received_events(wait_seconds=1) if e["detail"].get("advertiserId") == advertiser_id]
    for e in received:
        d = e["detail"]
        extra = {k: d[k] for k in ("purpose", "generation", "grantExpiresAt", "leadDays", "source") if k in d}
        print(f"    {e['detail-type']:<22} {json.dumps(extra)}")
    types = {e["detail-type"] for e in received}
    return {"AdvertiserInvited", "AdvertiserConnected", "GrantExpiring", "ReconsentCompleted"} <= types


def downstream_call(advertiser_id: str) -> bool:
    from adsauth.client import AdsApiSession, get_token_info
    from adsauth.wiring import store

    profile = sorted(store().list_profiles(advertiser_id), key=lambda p: p.profile_id)[0]
    info = get_token_info(profile_id=profile.profile_id)
    print(f"get_access_token(profile_id={profile.profile_id}) → a token with "
          f"{int(info.remaining_seconds() // 60)} min left (value not shown)")
    session = AdsApiSession(profile.profile_id)
    listed = session.list_profiles()
    region = getattr(session.region, "value", session.region)
    print(f"AdsApiSession({profile.profile_id}) → {region} host, GET /v2/profiles → {len(listed)} profiles:")
    for item in listed:
        info = item.get("accountInfo", {})
        print(f"    {item['profileId']:>16}  {item.get('countryCode', ''):<2}  {info.get('type', ''):<7} {info.get('name', '')}")
    return len(listed) > 0


def _title(html: str) -> str:
    start = html.find('<h1 id="title">')
    return html[start + 15 : html.find("</h1>", start)] if start >= 0 else "?"


def show_advertiser(advertiser_id: str) -> bool:
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
    expires_at = _access_token(advertiser_id).expires_at
    print(f"access token:     stored in Secrets Manager, expires {when(expires_at)} "
          f"(in {int((expires_at - time.time()) // 60)} min); value not shown")
    print(f"tokens stored in: {_where(advertiser_id)} (a new grant's place, in either layout)")
    print(f"grant expires:    {when(advertiser.grant_expires_at)} — Amazon ends it 365 days after the consent "
          f"({when(advertiser.consented_at)}); re-consent e-mails go out 30, 7 and 1 days before")
    regions_seen = {p.region.value for p in profiles}
    return advertiser.status.value == "connected" and regions_seen == {"NA", "EU", "FE"}


if __name__ == "__main__":
    sys.exit(main())
