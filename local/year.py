"""A simulated year (and a bit) of Amazon Ads grants: the real onboarding (``Onboarding``) and the
real refresher (``Refresher``) on the in-memory stand-ins of ``local.memory``, on a fake clock.

    python -m local.year                       # 1,000 advertisers, 760 days from 2026-07-01
    simulate_year(200, seed=3, completion_rate=0.8)

Advertisers consent on random dates of the first year, each through the whole flow (``invite`` →
``start`` → ``check_state`` → ``complete`` with a code from the simulated LwA). Amazon ends every
grant 365 days after its consent and refuses its refresh token from then on. The refresher (the
dispatcher every minute, its queue drained through ``refresh``) e-mails a re-consent invitation
30, 7 and 1 days before the end (``MemoryMailer``); an advertiser reads the link in the mail. A
share (``completion_rate``) of the advertisers renew: each follows one of the links (a later one
with some chance, the last one always) after a few hours or days, through the same flow; the rest
never do, and must be moved to ``needs_reauth`` (``grant_expired``) before LwA refuses them.
Downstream reads at random times look at the stored access token.

The clock jumps from event to event: dispatcher runs with nothing due are skipped. And LwA's
1-hour access tokens are stretched while nothing is about to happen (a year of hourly refreshes,
about 11,000 per advertiser, is what ``simulate_day`` measures already): a token lives half the
time to its grant's next moment (a re-consent lead or the end), at least an hour, at most
``max_token_days``, never past the grant's end. So around every lead the refresher runs on
1-hour tokens, as in production, and a re-consent e-mail goes out within the hour of its lead.
Profiles are listed at each consent and then yearly, in NA only: they are not what this is about.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import parse_qs, urlparse

from adsauth.errors import AdsAuthError, GrantInvalid
from adsauth.events import DETAIL_TYPES
from adsauth.models import AdvertiserStatus, ConnectRedirect, DueAdvertiser
from adsauth.onboarding import Onboarding
from adsauth.refresher import Refresher
from adsauth.regions import Region
from adsauth.settings import ACCESS_TOKEN_SECONDS, DAY
from local.memory import MemoryMailer, MemoryPublisher, MemoryStore, MemoryVault
from local.simulation import FakeClock, MemoryNotifier, MemoryQueue, NoProfiles, SimulatedLwa, simulation_settings

CONNECTED = AdvertiserStatus.CONNECTED
START = datetime(2026, 7, 1, tzinfo=timezone.utc).timestamp()
HOUR = 3600
TICK_SECONDS = 60  # the dispatcher's schedule (refresh_schedule_minutes = 1)
LINK = re.compile(r"/connect/([A-Za-z0-9_\-]+)")  # the invitation link in a re-consent e-mail
ANSWER_RATE = 0.6  # a renewing advertiser follows each re-consent e-mail with this chance, the last one always
__all__ = ["GrantLwa", "SimulatedYear", "YearStore", "run_year", "simulate_year"]


class YearStore(MemoryStore):
    """``MemoryStore`` with the same due query answered without sorting every advertiser: a year
    runs the dispatcher some 70,000 times over 1,000 advertisers, of whom one or two are due."""

    def due_advertisers(self, before):
        with self.lock:
            self.due_queries += 1
            due = sorted(a for a, d in self.due.items() if d < before)
            return [DueAdvertiser(a, repr(self.due[a]), self.advertisers[a].token_expires_at) for a in due]


class GrantLwa(SimulatedLwa):
    """Login with Amazon since 2026-06-30: a grant ends ``grant_seconds`` after its consent, and
    its refresh token is refused (``invalid_grant``) from then on, however often it was
    refreshed. A code is issued when the advertiser clicks Allow (``authorize``) and works once.
    Access tokens are stretched as the module says."""

    def __init__(self, clock: Callable[[], float], *, grant_seconds: float, lead_days: tuple[int, ...],
                 max_token_seconds: float) -> None:
        super().__init__(clock)
        self.grant_seconds, self.lead_days, self.max_token_seconds = grant_seconds, lead_days, max_token_seconds
        self.grant_ends: dict[str, float] = {}  # refresh token -> its grant's end
        self.codes: set[str] = set()
        self.exchanges = 0
        self.refused = 0  # refresh calls answered invalid_grant
        self._codes = itertools.count(1)

    def authorize(self) -> str:
        code = f"ANsimcode{next(self._codes):08d}"
        self.codes.add(code)
        return code

    def exchange_code(self, region, code, redirect_uri, code_verifier):
        if code not in self.codes:
            raise GrantInvalid()
        self.codes.discard(code)
        self.exchanges += 1
        now = self.clock()
        tokens = self.grant()
        self.grant_ends[tokens.refresh_token] = now + self.grant_seconds
        return replace(tokens, expires_at=self.expiry(now, now + self.grant_seconds))

    def refresh(self, region, refresh_token):
        end = self.grant_ends.get(refresh_token)
        if end is not None and self.clock() >= end:
            self.refresh_calls.append(region)
            self.refused += 1
            raise GrantInvalid()
        tokens = super().refresh(region, refresh_token)
        if end is None:
            return tokens
        self.grant_ends[tokens.refresh_token] = end  # rotated or not: the same grant
        return replace(tokens, expires_at=self.expiry(self.clock(), end))

    def expiry(self, now: float, end: float) -> float:
        moments = [m for m in (end - d * DAY for d in self.lead_days) if m > now] + [end]
        lifetime = min(max((min(moments) - now) / 2, ACCESS_TOKEN_SECONDS), self.max_token_seconds)
        return min(now + lifetime, end)


@dataclass(frozen=True)
class Mail:
    """A re-consent e-mail as the advertiser received it."""

    advertiser_id: str
    at: float
    lead: int | None  # the lead (days) the refresher reported for it
    grant_ends_at: float  # the end of the grant it asks to renew
    token: str = ""  # the invitation token, from the link in the body


@dataclass(frozen=True)
class Completion:
    advertiser_id: str
    at: float
    lead: int  # the e-mail it followed
    replaced_grant_end: float
    mailed_at: float


class SimulatedYear:
    """One run: the domain, the stand-ins, the advertisers' behaviour and what was observed."""

    def __init__(self, advertisers: int, *, seed: int, completion_rate: float, days: float, consent_days: float,
                 reads_per_day: float, max_token_days: float, lead_seconds: int, profile_refresh_days: int,
                 amazon_grant_days: float | None, start: float) -> None:
        self.count, self.completion_rate, self.reads_per_day = advertisers, completion_rate, reads_per_day
        self.start, self.end, self.consent_days = start, start + days * DAY, consent_days
        self.seed, self.rng = seed, random.Random(seed)
        # each advertiser draws from its own generator: the domain's random ids decide the order
        # within a dispatcher run, and must not change what an advertiser does
        self.rngs: dict[str, random.Random] = {}
        self.clock = FakeClock(start)
        self.settings = simulation_settings(REFRESH_LEAD_SECONDS=lead_seconds, SES_FROM_ADDRESS="adsauth@sim.example",
                                            PROFILE_REFRESH_SECONDS=profile_refresh_days * DAY, ALLOWED_REGIONS="NA")
        grant_seconds = self.settings.grant_lifetime_seconds if amazon_grant_days is None else amazon_grant_days * DAY
        self.lwa = GrantLwa(self.clock, grant_seconds=grant_seconds, lead_days=self.settings.reconsent_lead_days,
                            max_token_seconds=max_token_days * DAY)
        self.store = YearStore(self.settings.due_schedule, events_enabled=True)
        self.vault, self.queue, self.mailer = MemoryVault(), MemoryQueue(), MemoryMailer()
        self.publisher, self.notifier = MemoryPublisher(), MemoryNotifier()
        self.onboarding = Onboarding(settings=self.settings, store=self.store, vault=self.vault, lwa=self.lwa,
                                     ads=NoProfiles(), clock=self.clock, publisher=self.publisher)
        self.refresher = Refresher(settings=self.settings, store=self.store, vault=self.vault, lwa=self.lwa,
                                   ads=NoProfiles(), notifier=self.notifier, queue=self.queue, clock=self.clock,
                                   publisher=self.publisher, mailer=self.mailer)
        self.renews: dict[str, bool] = {}  # True: follows one re-consent link of every grant; False: never
        self.by_email: dict[str, str] = {}
        self.connected_at: dict[str, float] = {}
        self.mails: list[Mail] = []
        self.completions: list[Completion] = []
        self.link_failures: list[tuple[str, float, str]] = []  # (advertiser, when, error code or outcome)
        self.reads = 0
        self.failed_reads: Counter[str] = Counter()
        self.failed_while_connected: list[tuple[str, float]] = []
        self.min_remaining = float("inf")  # the least validity a successful read saw
        self.outcomes: Counter[str] = Counter()
        self.seconds = 0.0
        self._events: list = []
        self._seq = itertools.count()
        self._mails_seen = 0

    # --- the event loop ----------------------------------------------------------------------------
    def _at(self, at: float, handler: Callable, *args) -> None:
        heapq.heappush(self._events, (at, next(self._seq), handler, args))

    def _next_dispatch(self, after: float) -> float:
        """The first dispatcher run that finds an advertiser due (``dispatch_due``: deadline < now + lead)."""
        if not self.store.due:
            return float("inf")
        earliest = min(self.store.due.values()) - self.settings.refresh_lead_seconds
        return max((earliest // TICK_SECONDS + 1) * TICK_SECONDS, after + TICK_SECONDS)

    def run(self) -> SimulatedYear:
        started = time.perf_counter()
        for i in range(self.count):
            self._at(self.start + self.rng.uniform(0, self.consent_days * DAY), self._invite, i)
        last_run = self.start - TICK_SECONDS
        dispatch = self._next_dispatch(last_run)
        while True:
            at = self._events[0][0] if self._events else float("inf")
            if min(at, dispatch) >= self.end:
                break
            if dispatch <= at:
                self.clock.now = last_run = dispatch
                self._dispatch()
            else:
                _, _, handler, args = heapq.heappop(self._events)
                self.clock.now = at
                handler(*args)
                if handler == self._read:
                    continue  # a read changes nothing: the next dispatch stays where it was
            dispatch = self._next_dispatch(last_run)
        self.clock.now = self.end
        self.refresher.relay_events()
        self.seconds = time.perf_counter() - started
        return self

    def _dispatch(self) -> None:
        """The dispatcher's run, then the worker on every queued job, then the outbox relay."""
        self.refresher.dispatch_due(self.clock.now)
        while self.queue.messages:
            result = self.refresher.refresh(self.queue.messages.popleft())
            self.outcomes[result.outcome] += 1
            self._read_mail(result.advertiser_id, result.reconsent_lead)
        self.refresher.relay_events()

    # --- the advertisers -------------------------------------------------------------------------------
    def _invite(self, i: int) -> None:
        advertiser, token = self.onboarding.invite(name=f"Shop {i}", email=f"shop{i}@sim.example", region=Region.NA)
        self.by_email[advertiser.email] = advertiser.advertiser_id
        rng = self.rngs[advertiser.advertiser_id] = random.Random(f"{self.seed}:{i}")
        self.renews[advertiser.advertiser_id] = rng.random() < self.completion_rate
        self._at(self.clock.now + rng.uniform(600, 2 * DAY), self._open, advertiser.advertiser_id, token, None)

    def _read_mail(self, advertiser_id: str, lead: int | None) -> None:
        while self._mails_seen < len(self.mailer.sent):
            to, _subject, body = self.mailer.sent[self._mails_seen]
            self._mails_seen += 1
            recipient = self.by_email[to]
            found = LINK.search(body)
            advertiser = self.store.get_advertiser(recipient)
            mail = Mail(recipient, self.clock.now, lead if recipient == advertiser_id else None,
                        advertiser.grant_expires_at or 0.0, found.group(1) if found else "")
            self.mails.append(mail)
            self._answer(mail)

    def _answer(self, mail: Mail) -> None:
        if not self.renews[mail.advertiser_id] or not mail.token:
            return
        last = mail.lead == min(self.settings.reconsent_lead_days)
        rng = self.rngs[mail.advertiser_id]
        if not last and rng.random() >= ANSWER_RATE:
            return  # waits for the next reminder
        # hours to a few days, and always before adsauth gives the grant up (lead before its end)
        time_left = mail.grant_ends_at - self.settings.refresh_lead_seconds - self.clock.now
        delay = rng.uniform(min(HOUR, time_left / 4), min(3 * DAY, time_left * 3 / 4))
        self._at(self.clock.now + delay, self._open, mail.advertiser_id, mail.token, mail)

    def _open(self, advertiser_id: str, token: str, mail: Mail | None) -> None:
        """The advertiser opens the link; Amazon asks, the advertiser clicks Allow a little later."""
        try:
            redirect = self.onboarding.start(token)
        except AdsAuthError as exc:
            self.link_failures.append((advertiser_id, self.clock.now, exc.code))
            return
        at_amazon = self.rngs[advertiser_id].uniform(20, 180)  # signing in, then Allow
        self._at(self.clock.now + at_amazon, self._callback, advertiser_id, redirect, mail)

    def _callback(self, advertiser_id: str, redirect: ConnectRedirect, mail: Mail | None) -> None:
        state = parse_qs(urlparse(redirect.authorize_url).query)["state"][0]
        before = self.store.get_advertiser(advertiser_id)
        try:
            pending, verifier = self.onboarding.check_state(state, {redirect.cookie_name: redirect.cookie_value})
            result = self.onboarding.complete(pending, verifier, code=self.lwa.authorize(), error=None)
        except AdsAuthError as exc:
            self.link_failures.append((advertiser_id, self.clock.now, exc.code))
            return
        if result.outcome != "connected":
            self.link_failures.append((advertiser_id, self.clock.now, result.reason or result.outcome))
            return
        if mail is None:
            self.connected_at[advertiser_id] = self.clock.now
            self._at(self.clock.now + self._gap(advertiser_id), self._read, advertiser_id)
        else:
            self.completions.append(Completion(advertiser_id, self.clock.now, mail.lead or 0,
                                               before.grant_expires_at or 0.0, mail.at))

    # --- downstream ------------------------------------------------------------------------------------
    def _gap(self, advertiser_id: str) -> float:
        return self.rngs[advertiser_id].expovariate(self.reads_per_day / DAY)

    def _read(self, advertiser_id: str) -> None:
        """A downstream read: it needs a stored token with time left, from a connected advertiser
        (stricter than ``adsauth.client``, which serves the last token of a ``needs_reauth`` one
        until it runs out)."""
        now = self.clock.now
        self.reads += 1
        connected = self.store.advertisers[advertiser_id].status is CONNECTED
        token = self.vault.access.get(advertiser_id)
        if not connected or token is None or token[1] <= now:
            self.failed_reads[advertiser_id] += 1
            if connected:
                self.failed_while_connected.append((advertiser_id, now))
        else:
            self.min_remaining = min(self.min_remaining, token[1] - now)
        self._at(now + self._gap(advertiser_id), self._read, advertiser_id)

    # --- what it shows ---------------------------------------------------------------------------------
    def figures(self) -> dict:
        leads = self.settings.reconsent_lead_days
        by_lead = Counter(m.lead for m in self.mails)
        reconsented = {c.advertiser_id for c in self.completions}
        reasons = Counter(a.status_reason for a in self.store.advertisers.values()
                          if a.status is AdvertiserStatus.NEEDS_REAUTH)
        published = Counter(self.publisher.types())
        late = [m.at - (m.grant_ends_at - m.lead * DAY) for m in self.mails if m.lead is not None]
        return {
            "advertisers": self.count,
            "days": round((self.end - self.start) / DAY, 1),
            "connected": len(self.connected_at),
            "reconsent_emails": {f"{d}_days": by_lead[d] for d in leads},
            "reconsent_emails_total": len(self.mails),
            "reconsent_email_lateness_max_minutes": round(max(late, default=0) / 60, 1),
            "reconsents_completed": len(self.completions),
            "advertisers_reconsented": len(reconsented),
            "advertisers_never_reconsented": self.count - len(reconsented),
            "needs_reauth_grant_expired": reasons["grant_expired"],
            "needs_reauth_other": sum(n for reason, n in reasons.items() if reason != "grant_expired"),
            "link_failures": len(self.link_failures),
            "downstream_reads": self.reads,
            "reads_failed_reconsented": sum(n for a, n in self.failed_reads.items() if a in reconsented),
            "reads_failed_not_reconsented": sum(n for a, n in self.failed_reads.items() if a not in reconsented),
            "reads_failed_while_connected": len(self.failed_while_connected),
            "read_min_remaining_minutes": (round(self.min_remaining / 60, 1)
                                           if self.min_remaining < float("inf") else None),
            "lwa_refresh_calls": len(self.lwa.refresh_calls),
            "lwa_invalid_grant": self.lwa.refused,
            "dispatcher_runs": self.store.due_queries,
            "refresh_outcomes": dict(sorted(self.outcomes.items())),
            "events": {t: published[t] for t in DETAIL_TYPES},
            "seconds": round(self.seconds, 1),
        }


def run_year(
    advertisers: int = 1000, *, seed: int = 7, completion_rate: float = 0.9, days: float = 760,
    consent_days: float = 365, reads_per_day: float = 2, max_token_days: float = 10, lead_seconds: int = 720,
    profile_refresh_days: int = 365, amazon_grant_days: float | None = None, start: float = START,
) -> SimulatedYear:
    """The run with everything it observed (``figures()`` sums it up). ``days``: the window, long
    enough by default for every first grant to end (consents over ``consent_days``, 365-day
    grants); ``amazon_grant_days``: LwA's grant lifetime, when it differs from the settings'."""
    return SimulatedYear(
        advertisers, seed=seed, completion_rate=completion_rate, days=days, consent_days=consent_days,
        reads_per_day=reads_per_day, max_token_days=max_token_days, lead_seconds=lead_seconds,
        profile_refresh_days=profile_refresh_days, amazon_grant_days=amazon_grant_days, start=start,
    ).run()


def simulate_year(advertisers: int = 1000, **options) -> dict:
    """The figures of a simulated year (see ``run_year`` for the options)."""
    return run_year(advertisers, **options).figures()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.year", description="A simulated year of grants.")
    parser.add_argument("--advertisers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--completion-rate", type=float, default=0.9)
    parser.add_argument("--days", type=float, default=760)
    args = parser.parse_args(argv)
    print(json.dumps(simulate_year(args.advertisers, seed=args.seed, completion_rate=args.completion_rate,
                                   days=args.days), indent=2))


if __name__ == "__main__":
    main()
