"""A simulated year of grants (``local.year``): 150 advertisers consent through the real onboarding
flow over the first year, the real refresher e-mails re-consent invitations 30, 7 and 1 days before
each 365-day grant ends, 90% of the advertisers follow a link, the rest never do. The checks look
at what the run observed (mails received, flows completed, reads, the table, the published
events), and the figures the simulation sums up are checked against it."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from adsauth.events import DETAIL_TYPES
from adsauth.models import AdvertiserStatus
from adsauth.settings import DAY
from local.year import run_year

ADVERTISERS = 150
HOUR = 3600


@pytest.fixture(scope="module")
def year():
    return run_year(ADVERTISERS, seed=11, completion_rate=0.9)


@pytest.fixture(scope="module")
def figures(year):
    result = year.figures()
    print(f"\nsimulated year: {result}")
    return result


def never_renewing(year) -> set[str]:
    return {a for a, renews in year.renews.items() if not renews}


def test_every_advertiser_connected_through_the_flow_and_every_link_worked(year, figures):
    assert len(year.connected_at) == ADVERTISERS
    assert year.link_failures == []
    assert year.lwa.exchanges == ADVERTISERS + len(year.completions)


def test_every_completed_reconsent_came_before_its_grant_ended(year):
    assert year.completions
    lead = year.settings.refresh_lead_seconds
    for c in year.completions:
        assert c.mailed_at < c.at < c.replaced_grant_end - lead, c
    # whoever renews did so for every grant that came to an end, and is still connected
    renewed = {c.advertiser_id for c in year.completions}
    assert renewed == {a for a, renews in year.renews.items() if renews}
    for advertiser_id in renewed:
        advertiser = year.store.get_advertiser(advertiser_id)
        assert advertiser.status is AdvertiserStatus.CONNECTED
        assert advertiser.grant_expires_at > year.end


def test_reads_never_fail_for_advertisers_who_reconsented(year, figures):
    assert figures["downstream_reads"] > ADVERTISERS * 365
    assert figures["reads_failed_reconsented"] == 0
    assert figures["reads_failed_while_connected"] == 0  # no read ever found a connected advertiser's token gone
    # the reads do fail, for those who let their grant end (from the moment adsauth gave it up)
    assert figures["reads_failed_not_reconsented"] > 0
    assert set(year.failed_reads) <= never_renewing(year)


def test_who_never_reconsents_is_needs_reauth_before_the_grant_ends_and_lwa_never_refuses(year, figures):
    never = never_renewing(year)
    assert 0 < len(never) < ADVERTISERS / 4
    needs_reauth = {a.advertiser_id: a for a in year.store.advertisers.values()
                    if a.status is AdvertiserStatus.NEEDS_REAUTH}
    assert set(needs_reauth) == never
    moved = {e.advertiser_id: e for e in year.store.events if e.event == "needs_reauth"}
    lead = year.settings.refresh_lead_seconds
    for advertiser_id, advertiser in needs_reauth.items():
        assert advertiser.status_reason == "grant_expired"
        assert moved[advertiser_id].cause == "grant_expired"
        # within the refresh lead before the end: the last moment the refresher gets, LwA still says yes
        assert advertiser.grant_expires_at - lead <= moved[advertiser_id].at < advertiser.grant_expires_at
    assert year.lwa.refused == 0 and figures["lwa_invalid_grant"] == 0
    assert figures["needs_reauth_grant_expired"] == len(never) and figures["needs_reauth_other"] == 0


def test_reconsent_emails_go_out_at_each_lead_once_per_grant(year, figures):
    leads = year.settings.reconsent_lead_days
    assert leads == (30, 7, 1)
    assert len(year.mails) == len(year.mailer.sent) == figures["reconsent_emails_total"]
    per_grant = defaultdict(list)
    for mail in year.mails:
        assert mail.token and mail.lead in leads
        moment = mail.grant_ends_at - mail.lead * DAY
        assert 0 <= mail.at - moment <= HOUR, mail  # the refresher runs at least hourly around a lead
        per_grant[(mail.advertiser_id, mail.grant_ends_at)].append(mail.lead)
    followed = {(c.advertiser_id, c.replaced_grant_end): c.lead for c in year.completions}
    never = never_renewing(year)
    for (advertiser_id, grant_end), sent in per_grant.items():
        assert len(sent) == len(set(sent)), (advertiser_id, sent)
        if advertiser_id in never:
            assert tuple(sent) == leads  # every reminder, none answered
        elif (advertiser_id, grant_end) in followed:  # the reminders up to the one followed, no later one
            assert tuple(sent) == leads[: leads.index(followed[(advertiser_id, grant_end)]) + 1]
        else:  # the window ended before the advertiser answered (it always does before the end)
            assert tuple(sent) == leads[: len(sent)] and grant_end > year.end
    assert figures["reconsent_emails"] == {f"{d}_days": Counter(m.lead for m in year.mails)[d] for d in leads}
    assert all(figures["reconsent_emails"][f"{d}_days"] > 0 for d in leads)


def test_the_lifecycle_events_count_what_happened(year, figures):
    published = year.publisher.published
    assert len({e.event_id for e in published}) == len(published)  # each once
    events = figures["events"]
    published_types = Counter(e.detail_type for e in published)
    assert events == {t: published_types[t] for t in DETAIL_TYPES}
    assert events["AdvertiserConnected"] == ADVERTISERS
    assert events["AdvertiserInvited"] == ADVERTISERS + len(year.mails)
    assert events["GrantExpiring"] == len(year.mails)
    expiring = [e.detail for e in published if e.detail_type == "GrantExpiring"]
    assert Counter(d["leadDays"] for d in expiring) == Counter(m.lead for m in year.mails)
    assert all(d["reconsentEmailed"] for d in expiring)
    assert events["ReconsentCompleted"] == len(year.completions) == figures["reconsents_completed"]
    reauth = [e for e in published if e.detail_type == "AdvertiserNeedsReauth"]
    assert len(reauth) == len(never_renewing(year))
    assert {e.advertiser_id for e in reauth} == never_renewing(year)
    assert all(e.detail["reason"] == "grant_expired" for e in reauth)
    assert year.store.outbox == {}  # nothing left unpublished


def test_a_grant_that_amazon_ends_earlier_than_configured_is_seen_as_invalid_grant():
    # the check has teeth: LwA ending grants a day before adsauth expects is refused refreshes
    year = run_year(30, seed=5, consent_days=20, days=400, amazon_grant_days=364)
    result = year.figures()
    assert result["lwa_invalid_grant"] > 0
    assert result["needs_reauth_other"] > 0 and result["needs_reauth_grant_expired"] == 0
    assert {a.status_reason for a in year.store.advertisers.values()
            if a.status is AdvertiserStatus.NEEDS_REAUTH} == {"invalid_grant"}
