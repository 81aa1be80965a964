"""Runs every figure, writes ``bench/results.json`` and prints the table (see ``python -m bench``).

Timings are compared within one run (ratios) and reported as medians; none of them is a test
assertion. ``SIZES["tiny"]`` keeps the harness itself tested (tests/unit/test_bench.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.json"

# scale_*: the packed layout's day at 100,000 advertisers (``bench.layouts.scale``): 3 hours, not
# 24, because the worker logic costs ~0.3 ms of Python per refresh and the dispatcher ~0.2 s per
# run at that size (a day would take ~15 minutes); 3 hours are three token lifetimes of the
# steady state, at the real schedule (one dispatcher run a minute)
SIZES = {
    "full": {"onboarding_runs": 7, "reads": 1000, "day_advertisers": 1000, "day_hours": 24,
             "scale_advertisers": 100_000, "scale_hours": 3,
             "backlog": 10_000, "one_at_a_time_sample": 200, "import_runs": 5, "synthesize": True,
             "year_advertisers": 1000},
    "tiny": {"onboarding_runs": 1, "reads": 50, "day_advertisers": 20, "day_hours": 2,
             "scale_advertisers": 2_000, "scale_hours": 1,
             "backlog": 30, "one_at_a_time_sample": 5, "import_runs": 1, "synthesize": False,
             "year_advertisers": 20},
}

# key: (comparison, goal, unit) — the issues' goals (5 and 11); figures without a goal have None.
# The top-level figures are the default (packed) layout's; LAYOUT_FIGURES are measured for the
# per-advertiser layout too (``per_advertiser`` in the results).
GOALS = {
    "onboarding_vs_sequential_ratio": ("<=", 0.55, ""),
    "refreshes_per_advertiser_hour": ("<=", 1.3, ""),
    "min_remaining_validity_minutes": (">=", 10, "min"),
    "max_writes_per_secret_10min": ("<=", 1, ""),  # Secrets Manager: at most one PutSecretValue per 10 minutes
    "max_writes_per_secret_hour": ("<=", 6, ""),
    "advertisers_per_pack": (None, None, ""),
    "secrets_per_advertiser": (None, None, ""),
    "secrets_calls_per_advertiser_hour": (None, None, ""),
    "kms_calls_per_advertiser_hour": (None, None, ""),
    "refresh_throughput_speedup": (">=", 16, "×"),
    "refresh_lost": ("==", 0, ""),
    "refresh_duplicated": ("==", 0, ""),
    "secrets_calls_per_1000_reads": (None, None, ""),
    "cached_read_p50_us": (None, None, "µs"),
    "cached_read_p99_us": (None, None, "µs"),
    "cold_import_ms_max": ("<=", 300, "ms"),
    "cold_import_vs_boto3_ratio": (None, None, "×"),
    "asset_size_mb_max": ("<=", 5, "MB"),
    "cost_per_advertiser_month_usd_100": (None, None, "$"),
    "cost_per_advertiser_month_usd_1000": ("<=", 0.05, "$"),
    "cost_per_advertiser_month_usd_10000": ("<=", 0.03, "$"),
}
FIGURES = tuple(GOALS)
LAYOUT_FIGURES = (
    "refreshes_per_advertiser_hour", "min_remaining_validity_minutes", "max_writes_per_secret_10min",
    "max_writes_per_secret_hour", "advertisers_per_pack", "secrets_per_advertiser", "secrets_calls_per_advertiser_hour",
    "kms_calls_per_advertiser_hour", "cost_per_advertiser_month_usd_100", "cost_per_advertiser_month_usd_1000",
    "cost_per_advertiser_month_usd_10000",
)
# the packed layout at 100,000 advertisers (``scale_100k`` in the results); a dispatcher run must
# end well inside the schedule (refresh_schedule_minutes = 1): half of it
SCALE_GOALS = {
    "refreshes_per_advertiser_hour": ("<=", 1.3, ""),
    "min_remaining_validity_minutes": (">=", 10, "min"),
    "dispatcher_longest_run_python_seconds": ("<=", 30, "s"),
    "dispatcher_longest_run_modelled_aws_seconds": ("<=", 30, "s"),
    "peak_secret_writes_per_second": ("<=", 50, "/s"),  # PutSecretValue's documented account quota
    "peak_lwa_calls_per_second": (None, None, "/s"),  # LwA's rate limit is not documented
    "max_writes_per_secret_10min": ("<=", 1, ""),
    "max_writes_per_secret_hour": ("<=", 6, ""),
}
SCALE_FIGURES = tuple(SCALE_GOALS)


def machine() -> dict:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                model = line.split(":", 1)[1].strip()
                break
    return {"arch": platform.machine(), "cpu": model, "cores": os.cpu_count(),
            "python": platform.python_version(), "system": platform.system(),
            "load_average_1m_at_start": round(os.getloadavg()[0], 2)}


def met(key: str, value, goals: dict = GOALS) -> bool | None:
    op, goal, _unit = goals[key]
    if op is None or value is None:
        return None
    return {"<=": value <= goal, ">=": value >= goal, "==": value == goal}[op]


def _step(name: str) -> None:
    print(f"[bench] {name} …", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _quiet():
    """Powertools prints metrics (EMF) to stdout; the bench's stdout is its table."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def run(size: str = "full") -> dict:
    from bench import cost, footprint, inventory, layouts, live, refresh, year
    from infra.config import load_config

    s = SIZES[size]
    # cdk.json ships a placeholder operator_name that synth refuses; the bench names one, as ops do
    block = json.loads((REPO / "cdk.json").read_text())["context"]["adsauth"]
    config = load_config({**block, "operator_name": "Bench Agency"})
    started, host = time.monotonic(), machine()
    details: dict = {}
    figures: dict = {}

    def take(name: str, result: dict) -> None:
        details[name] = result.pop("details", {})
        figures.update(result)

    _step("cold imports and asset sizes")
    take("cold_imports", footprint.cold_imports(s["import_runs"]))
    take("assets", footprint.asset_sizes())
    _step("resources in the template")
    resources = inventory.inventory(synthesize=s["synthesize"])
    _step(f"simulated days of both token layouts, {s['day_advertisers']} advertisers, {s['day_hours']} h")
    with _quiet():
        days = layouts.days(s["day_advertisers"], s["day_hours"])
    details["layouts"] = {layout: day.pop("details") for layout, day in days.items()}
    figures.update(days["packed"])
    _step(f"the packed layout at {s['scale_advertisers']} advertisers, {s['scale_hours']} h")
    with _quiet():
        scale = layouts.scale(s["scale_advertisers"], s["scale_hours"])
    details["scale_100k"] = scale.pop("details")
    _step(f"a simulated year of grants, {s['year_advertisers']} advertisers")
    take("year", year.year(s["year_advertisers"]))
    _step("onboarding, downstream reads and AWS calls on the local stack")
    with _quiet():
        measured = live.run(onboarding_runs=s["onboarding_runs"], reads=s["reads"])
    take("onboarding", measured["onboarding"])
    take("reads", measured["reads"])
    details["aws_calls"] = measured["aws_calls"]
    _step(f"refresh throughput: {s['backlog']} due advertisers at concurrency {config.refresh_concurrency}")
    with _quiet():
        take("throughput", refresh.throughput(s["backlog"], s["one_at_a_time_sample"], config.refresh_concurrency))
    from adsauth.handlers import worker

    common = {
        "aws_calls_per_idle_dispatch": measured["aws_calls"]["per_idle_dispatch"],
        "aws_calls_per_callback": measured["aws_calls"]["per_callback"],
        "secrets_calls_per_1000_reads": figures["secrets_calls_per_1000_reads"],
        "refresh_schedule_minutes": config.refresh_schedule_minutes,
        "records_at_once": getattr(worker, "RECORDS_AT_ONCE", 1),
    }
    inputs = {layout: {**common, **cost_inputs(layout, days[layout], details["layouts"][layout], measured["aws_calls"])}
              for layout in cost.LAYOUTS}
    costs = cost.costs(inputs, resources)
    details["cost"] = {**costs.pop("details"), "resources": resources}
    figures.update(costs["packed"])
    per_advertiser = {**{k: days["per_advertiser"][k] for k in LAYOUT_FIGURES if k in days["per_advertiser"]},
                      **costs["per_advertiser"]}
    per_advertiser["goals_missed"] = [k for k in LAYOUT_FIGURES if met(k, per_advertiser[k]) is False]
    return {
        **{key: figures[key] for key in FIGURES},
        "goals_missed": [key for key in FIGURES if met(key, figures[key]) is False]
        + [f"scale_100k.{key}" for key in SCALE_FIGURES if met(key, scale[key], SCALE_GOALS) is False],
        "per_advertiser": per_advertiser,
        "scale_100k": scale,
        "size": size,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bench_seconds": round(time.monotonic() - started, 1),
        "machine": host,
        "details": details,
    }


def cost_inputs(layout: str, day: dict, measured: dict, live_calls: dict) -> dict:
    """A layout's measured cost inputs: its simulated day's refresh rate, pack sizes and calls per
    refresh; for the per-advertiser layout, the table and queue calls as measured on the local
    stack (``live``; the simulated day's mapped counts are close: ``details.layouts``) and the
    Secrets Manager calls of the simulated day (the same as the local stack's)."""
    per_refresh = measured["aws_calls_per_refresh"]
    source = "simulated day (in-memory adapters' calls mapped to the real adapters' API calls)"
    if layout == "per_advertiser":
        per_refresh = {**{k: v for k, v in live_calls["per_refresh_incl_its_dispatch"].items()
                          if not k.startswith("secretsmanager:")},
                       **{k: v for k, v in per_refresh.items() if k.startswith("secretsmanager:")}}
        source = "DynamoDB and SQS: the local stack (live); Secrets Manager: the simulated day"
    return {
        "refreshes_per_advertiser_hour": day["refreshes_per_advertiser_hour"],
        "aws_calls_per_refresh": per_refresh,
        "aws_calls_per_refresh_source": source,
        "refreshes_per_job": measured["refreshes_per_job"],
        "advertisers_per_pack": day["advertisers_per_pack"],
        "own_secrets_share": measured["own_secrets_share"],
        "due_window_share": measured["due_window_share"],
        "advertiser_item_bytes": measured["advertiser_item_bytes"],
    }


def _value(key: str, value, goals: dict = GOALS) -> str:
    unit = goals[key][2]
    if value is None:
        return "—"
    if unit == "$":
        return f"${value:.3f}"
    return f"{value:g} {unit}".strip()


def table(results: dict, *, markdown: bool = False) -> str:
    """Both layouts side by side (figure, packed, per-advertiser, goal, met: the packed layout's,
    the default), the 100,000-advertiser day's rows, the year's rows. A figure not measured per
    layout has one value."""
    from bench import year

    verdict = {True: "yes", False: "**no**" if markdown else "NO", None: ""}
    per_advertiser = results.get("per_advertiser", {})
    rows = []
    for key in FIGURES:
        op, goal, _unit = GOALS[key]
        ok = met(key, results[key])
        other = ""
        if key in LAYOUT_FIGURES and key in per_advertiser:
            other = _value(key, per_advertiser[key])
            other_ok = met(key, per_advertiser[key])
            if other_ok is not None and other_ok != ok:
                other += " ✗" if other_ok is False else " ✓"
        goal_text = "—" if op is None else f"{op} {_value(key, goal)}"
        rows.append((key, _value(key, results[key]), other, goal_text, verdict[ok]))
    scale = results.get("scale_100k")
    if scale:
        for key in SCALE_FIGURES:
            op, goal, _unit = SCALE_GOALS[key]
            goal_text = "—" if op is None else f"{op} {_value(key, goal, SCALE_GOALS)}"
            rows.append((f"scale_100k.{key}", _value(key, scale[key], SCALE_GOALS), "", goal_text,
                         verdict[met(key, scale[key], SCALE_GOALS)]))
    rows += [(key, value, "", goal, verdict[ok]) for key, value, goal, ok in year.rows(results.get("details", {}).get("year"))]
    m = results["machine"]
    caption = (f"{results['generated_at']} on {m['arch']}, {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
               f"load average {m.get('load_average_1m_at_start', '?')} at start "
               f"({results['size']} run, {results['bench_seconds']:.0f} s)")
    if scale:
        caption += (f"; scale_100k: {scale['advertisers']:,} advertisers, packed, {scale['hours']:g} h in "
                    f"{scale['step_seconds']:g} s steps")
    header = ("figure", "packed (default)", "per-advertiser", "goal", "met")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---|---|"]
        lines += ["| " + " | ".join((f"`{r[0]}`", *r[1:])) + " |" for r in rows]
        return "\n".join(lines) + f"\n\n{caption}"
    widths = [max(len(str(r[i])) for r in (*rows, header)) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines) + f"\n{caption}"


def write(results: dict, path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
