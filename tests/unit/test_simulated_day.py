"""A simulated day: 50 advertisers, the real dispatcher and worker logic every minute on a fake
clock, LwA issuing 3600 s tokens, downstream reads at random times (see ``local.simulation``)."""

from __future__ import annotations

from local.simulation import simulate_day


def test_a_day_costs_about_one_lwa_call_per_token_lifetime_and_reads_keep_ten_minutes():
    result = simulate_day(advertisers=50, hours=24)
    print(
        f"\nsimulated day: {result['calls_per_advertiser_hour']:.3f} LwA refresh calls per advertiser-hour, "
        f"least remaining validity seen by {result['reads']} reads: {result['min_remaining_seconds'] / 60:.1f} min"
    )
    assert result["calls_per_advertiser_hour"] <= 1.3
    assert result["min_remaining_seconds"] >= 600
    assert result["dispatch_queries"] == 24 * 60 and result["max_batch"] <= 10


def test_transient_lwa_failures_are_absorbed_by_the_lead_window():
    # the 10-minute promise holds while LwA is healthy; with 10% of calls failing, each failure
    # costs a minute of the 12-minute lead, and no reader ever gets close to an expired token
    result = simulate_day(advertisers=20, hours=6, lwa_failure_rate=0.1, seed=3)
    assert result["failed_jobs"] > 0
    assert result["min_remaining_seconds"] >= 300
