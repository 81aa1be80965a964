"""``make demo``: one advertiser's year with adsauth, unattended, on the local stack.

Starts moto server (as AWS), the LwA/Ads emulator and the local gateway; stores the LwA client
secret; invites an advertiser with the ops CLI; follows the e-mailed link like a browser (cookies,
redirects, Allow on Amazon's consent page); then shows what adsauth recorded: status, profiles per
region, the access token's expiry and the grant's 365-day end, never a token value. Then a
scheduled refresh (in the packed layout, the stack's default, it moves the advertiser's tokens into
a pack's shared secrets), a downstream Ads API call, and the year's end: 30 days before the grant
ends the refresher e-mails a renewal link, the advertiser completes it while a downstream reader
keeps reading, and no read fails. Last, the lifecycle events a consumer's EventBridge rule received.

The output is for a person: what happened, in outcome terms, with one date format. Every sentence
that states an outcome is checked; a check that fails prints ``FAILED: …`` on stderr and the demo
exits 1.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import time
from datetime import datetime

os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # keep the demo's output readable
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from adsauth.cli_output import when  # noqa: E402 - the CLI's one date format (imports no Powertools)

REGIONS = ("NA", "EU", "FE")
LINK = re.compile(r"https?://[^\s\"'<>]+/connect/[A-Za-z0-9_-]+")
ADVERTISER_ID = re.compile(r"\badv-[0-9a-f]+\b")

_steps = iter(range(1, 100))
_failures: list[str] = []


def step(text: str) -> None:
    print(f"\n{next(_steps)}. {text}")


def say(text: str) -> None:
    print(f"   {text}")


def check(ok: bool, what: str) -> bool:
    """``what`` says what should have happened; a miss is reported at once and fails the demo."""
    if not ok:
        _failures.append(what)
        print(f"FAILED: {what}", file=sys.stderr)
    return ok


def minutes(seconds: float) -> str:
    n = int(seconds // 60)
    return f"{n} minute{'s' if n != 1 else ''}"


def main() -> int:
    started = time.monotonic()
    from local.browser import Browser
    from local.stack import CLIENT_SECRET_NAME, LocalStack

    from adsauth import wiring

    clock = ShiftClock()
    wiring.clock = clock  # the functions' notion of "now", moved forward for the refresh cycle
    from adsauth import client

    client._clock = clock  # and the downstream client's
    print("adsauth demo: one advertiser, from invitation to the renewal a year later.")
    print("Everything runs on this machine: moto stands in for AWS, an emulator for Amazon.")
    step("Starting the local stack")
    with LocalStack(clock=clock) as stack:
        stack.enable_email()  # SES (moto) with a verified sender: invitations and renewals are e-mailed
        stack.emulator.grant_lifetime_seconds = 365 * 86400  # Amazon's 2026 grants end after a year
        say(f"adsauth's API:   {stack.base_url}")
        say(f"callback URL:    {stack.callback_url}  (in production you register it in the LwA console)")
        say(f"The LwA client secret is stored in Secrets Manager ({CLIENT_SECRET_NAME}).")

        step("Ops invite an advertiser")
        argv = ["invite", "--name", "Acme Outdoor", "--email", "ads@acme.example", "--region", "EU"]
        say("$ adsauth " + " ".join(f"'{a}'" if " " in a else a for a in argv))
        from adsauth import cli

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(argv)
        for line in out.getvalue().rstrip().splitlines():
            say("  " + line)
        advertiser, link = ADVERTISER_ID.search(out.getvalue()), LINK.search(out.getvalue())
        if not check(code == 0 and advertiser is not None and link is not None,
                     "the invite command printed the advertiser's id and its link"):
            return 1
        advertiser_id = advertiser.group(0)

        step("The advertiser opens the link, signs in at Amazon and clicks Allow")
        browser = Browser()
        consent = browser.open(link.group(0))
        if not check(consent.status_code == 200 and "allow" in consent.text.lower(),
                     "the link led to Amazon's sign-in and consent page"):
            return 1
        say("The link took them to Amazon's consent page for this app.")
        final = browser.follow(browser.click(consent, "allow"))
        check(final.url.split("?")[0].endswith("/result/connected") and "code=" not in final.url,
              "after Allow the advertiser landed on the connected page, with no code in its address")
        say(f"They clicked Allow at Amazon; adsauth stored their tokens and showed: \"{_title(final.text)}\"")

        step("What adsauth recorded")
        show_advertiser(advertiser_id)

        step("49 minutes later: the scheduled refresh")
        refresh_cycle(stack, clock, advertiser_id)

        step("A downstream Lambda calls the Ads API")
        downstream_call(advertiser_id)

        step("335 days later: the grant ends in 30 days, so adsauth asks the advertiser to renew")
        reconsent(stack, clock, advertiser_id)

        step("What a consumer's EventBridge rule received (source adsauth)")
        show_events(stack, advertiser_id)
    took = time.monotonic() - started
    if _failures:
        print(f"\ndemo FAILED ({len(_failures)} check{'s' if len(_failures) != 1 else ''}) after {took:.1f} s; "
              "everything stopped", file=sys.stderr)
        return 1
    print(f"\nDemo finished in {took:.1f} s; the local stack is stopped.")
    return 0


class ShiftClock:
    """Real time plus an offset: lets the demo show what happens 49 minutes (or a year) later."""

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
    """Where the advertiser's tokens are stored (``local.stack.stored_tokens``), never a value."""
    from local.stack import stored_tokens

    from adsauth.settings import get_settings

    found, prefix = stored_tokens(advertiser_id), get_settings().secret_prefix
    if found is None:
        return "nowhere"
    if found["where"] == "own":
        return f"the advertiser's own two secrets ({prefix}{{refresh,access}}/{advertiser_id})"
    shared = found["members"]
    return (f"a pack: two secrets shared by up to 100 advertisers, which keeps Secrets Manager's bill small "
            f"({prefix}{{refresh,access}}/packs/{found['pack']}, {shared} advertiser{'s' if shared != 1 else ''} so far)")


def show_advertiser(advertiser_id: str) -> None:
    from adsauth.wiring import onboarding

    store = onboarding().store
    advertiser = store.get_advertiser(advertiser_id)
    check(advertiser.status.value == "connected", "the advertiser is connected")
    say(f"{advertiser.name} ({advertiser.advertiser_id}), home region {advertiser.region.value}: "
        f"{advertiser.status.value}")
    profiles = store.list_profiles(advertiser_id)
    pending = {r.value for r in advertiser.pending_regions}
    found = {p.region.value for p in profiles}
    check(found == set(REGIONS), "profiles were found in NA, EU and FE")
    say(f"{len(profiles)} advertising profiles, listed in all three regions at once:")
    for region in REGIONS:
        for p in sorted((p for p in profiles if p.region.value == region), key=lambda p: p.profile_id):
            say(f"  {region}  {p.profile_id:>16}  {p.country_code}  {p.currency_code}  {p.account_type:<7} {p.account_name}")
        if region in pending:
            say(f"  {region}  (Amazon did not answer; adsauth asks again later)")
    expires_at = _access_token(advertiser_id).expires_at
    say(f"Access token: valid until {when(expires_at)} ({minutes(expires_at - time.time())} more); "
        "it is in Secrets Manager and never shown.")
    say(f"Tokens are stored in {_where(advertiser_id)}.")
    say(f"Grant: Amazon ends it {when(advertiser.grant_expires_at)}, 365 days after the consent "
        f"({when(advertiser.consented_at)}); adsauth e-mails a renewal link 30, 7 and 1 days before.")


def refresh_cycle(stack, clock: ShiftClock, advertiser_id: str) -> None:
    def refresh_calls() -> int:
        return stack.emulator.count("token", grant_type="refresh_token")

    from adsauth.settings import get_settings

    before, calls = _access_token(advertiser_id), refresh_calls()
    clock.offset += 49 * 60
    lead = get_settings().refresh_lead_seconds
    check(before.remaining_seconds(clock()) < lead, "49 minutes later the access token is due for a refresh")
    say(f"The access token has {minutes(before.remaining_seconds(clock()))} left (until {when(before.expires_at)}); "
        f"adsauth renews tokens with less than {minutes(lead)} left, so it is due.")
    dispatched, report = stack.scheduler().tick()
    after = _access_token(advertiser_id)
    spent = refresh_calls() - calls
    check(dispatched == 1 and report.processed == 1 and report.failed == 0,
          "the scheduled run found the advertiser due and refreshed it")
    check(after.value != before.value and after.expires_at > before.expires_at,
          "the refresh stored a new access token that lasts longer")
    check(spent == 1, "the refresh made exactly one call to Login with Amazon")
    say(f"The refresher renewed it with {spent} call to Login with Amazon: a new access token, valid until "
        f"{when(after.expires_at)} ({minutes(after.expires_at - before.expires_at)} later than the old one).")
    say(f"Its tokens are now in {_where(advertiser_id)}.")
    calls = refresh_calls()
    again, _ = stack.scheduler().tick()
    check(again == 0 and refresh_calls() == calls, "a minute later nothing was due and Amazon was not called")
    say("A minute later nothing was due, and Amazon was not called again.")


def downstream_call(advertiser_id: str) -> None:
    from adsauth.client import AdsApiSession, get_token_info
    from adsauth.wiring import store

    profile = sorted(store().list_profiles(advertiser_id), key=lambda p: p.profile_id)[0]
    info = get_token_info(profile_id=profile.profile_id)
    check(info.remaining_seconds() >= 10 * 60, "downstream got a token with at least 10 minutes left")
    say(f"A downstream Lambda got an access token for profile {profile.profile_id}, valid for "
        f"{minutes(info.remaining_seconds())} more (adsauth.client.get_access_token).")
    session = AdsApiSession(profile.profile_id)
    listed = session.list_profiles()
    region = getattr(session.region, "value", session.region)
    check(len(listed) > 0, "the Ads API call with that token listed the advertiser's profiles")
    say(f"With it, the Lambda asked the Ads API ({region}) for the advertiser's profiles and got {len(listed)}:")
    for item in listed:
        account = item.get("accountInfo", {})
        say(f"  {item['profileId']:>16}  {item.get('countryCode', ''):<2}  {account.get('type', ''):<7} {account.get('name', '')}")


def reconsent(stack, clock: ShiftClock, advertiser_id: str) -> None:
    import threading

    from local.browser import Browser

    from adsauth.client import clear_cache, get_access_token
    from adsauth.wiring import store

    before = store().get_advertiser(advertiser_id)
    clock.offset = before.grant_expires_at - 30 * 86400 + 60 - time.time()
    sent = len(stack.sent_emails())
    stack.scheduler().tick()
    adv = store().get_advertiser(advertiser_id)
    mails = stack.sent_emails()[sent:]
    if not check(len(mails) == 1, "the refresher e-mailed one renewal link"):
        return
    mail = mails[0]
    link = LINK.search(mail.body)
    if not check(link is not None, "the renewal e-mail holds a link"):
        return
    check(adv.status.value == "connected" and adv.reconsent_pending,
          "the advertiser stays connected while the renewal is pending")
    say(f"adsauth e-mailed {mail.destinations['ToAddresses'][0]}: \"{mail.subject}\"")
    say("Until they renew, the current grant keeps serving downstream.")
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
        consent = browser.open(link.group(0))
        final = browser.follow(browser.click(consent, "allow"))
        wait_for(len(reads) + len(failures) + 3)  # ... through the completion, and after it
    finally:
        stop.set()
        reader.join(30)
    after = store().get_advertiser(advertiser_id)
    check(final.url.split("?")[0].endswith("/result/connected"), "the advertiser completed the renewal")
    check(reads != [] and not failures, "no downstream read failed during the renewal")
    check(after.grant_expires_at > before.grant_expires_at and not after.reconsent_pending,
          "the renewal replaced the grant with a new one that ends later")
    say(f"They opened it and clicked Allow again: \"{_title(final.text)}\"")
    say(f"A downstream Lambda read the token {len(reads)} times meanwhile; "
        f"{len(failures)} read{'s' if len(failures) != 1 else ''} failed.")
    say(f"The grant now ends {when(after.grant_expires_at)} instead of {when(before.grant_expires_at)} "
        "(365 days after the new consent).")
    say(f"Tokens are stored in {_where(advertiser_id)}: the new grant's.")


def show_events(stack, advertiser_id: str) -> None:
    stack.scheduler().dispatch()  # the scheduled run also relays whatever the outbox still holds
    received = [e for e in stack.received_events(wait_seconds=1) if e["detail"].get("advertiserId") == advertiser_id]
    for e in received:
        say(f"{e['detail-type']:<21} {_event_meaning(e['detail-type'], e['detail'])}")
    types = {e["detail-type"] for e in received}
    expected = {"AdvertiserInvited", "AdvertiserConnected", "GrantExpiring", "ReconsentCompleted"}
    check(expected <= types, "the consumer received " + ", ".join(sorted(expected)))


def _event_meaning(kind: str, detail: dict) -> str:
    """One line a person reads; the event's own fields are in docs/events/."""
    ends = detail.get("grantExpiresAt")
    ends = when(datetime.fromisoformat(ends.replace("Z", "+00:00")).timestamp()) if ends else "?"
    if kind == "AdvertiserInvited":
        return "renewal link sent" if detail.get("purpose") == "reconsent" else "invitation created"
    if kind == "AdvertiserConnected":
        return f"connected; the grant ends {ends}"
    if kind == "GrantExpiring":
        return f"the grant ends in {detail.get('leadDays')} days ({ends})"
    if kind == "ReconsentCompleted":
        return f"renewed; the grant now ends {ends}"
    if kind == "ProfilesChanged":
        return "its advertising profiles changed (here: found for the first time)"
    return {"AdvertiserDeclined": "declined at Amazon", "AdvertiserNeedsReauth": "must authorize again",
            "AdvertiserRevoked": "revoked by ops"}.get(kind, "")


def _title(html: str) -> str:
    start = html.find('<h1 id="title">')
    return html[start + 15 : html.find("</h1>", start)] if start >= 0 else "?"


if __name__ == "__main__":
    sys.exit(main())
