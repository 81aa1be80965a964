"""A simulated year of grants (``local.year``): 1,000 advertisers consenting over the first year,
the re-consent e-mails 30, 7 and 1 days before each 365-day grant ends, who renews and who lapses.

Not figures of issue 5, so they stay out of the top-level keys: the run goes to ``details.year``
and its rows are added under the table (``rows``).
"""

from __future__ import annotations

from local.year import simulate_year


def year(advertisers: int) -> dict:
    return {"details": simulate_year(advertisers)}


def rows(result: dict | None) -> list[tuple[str, str, str, bool | None]]:
    """(figure, value, goal, met) for the table; none without a year in the results."""
    if not result:
        return []
    leads = "_".join(key.split("_")[0] for key in result["reconsent_emails"])  # "30_7_1"
    emails = " / ".join(str(n) for n in result["reconsent_emails"].values())
    never = result["advertisers_never_reconsented"]
    return [
        (f"year_reconsent_emails_{leads}_days", emails, "—", None),
        ("year_reconsents_completed", str(result["reconsents_completed"]), "—", None),
        ("year_needs_reauth_grant_expired", str(result["needs_reauth_grant_expired"]),
         f"== {never} never re-consented", result["needs_reauth_grant_expired"] == never),
        ("year_reads_failed_reconsented", str(result["reads_failed_reconsented"]), "== 0",
         result["reads_failed_reconsented"] == 0),
        ("year_lwa_invalid_grant", str(result["lwa_invalid_grant"]), "== 0", result["lwa_invalid_grant"] == 0),
    ]
