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

SIZES = {
    "full": {"onboarding_runs": 7, "reads": 1000, "day_advertisers": 1000, "day_hours": 24,
             "backlog": 10_000, "one_at_a_time_sample": 200, "import_runs": 5, "synthesize": True,
             "year_advertisers": 1000},
    "tiny": {"onboarding_runs": 1, "reads": 50, "day_advertisers": 20, "day_hours": 2,
             "backlog": 30, "one_at_a_time_sample": 5, "import_runs": 1, "synthesize": False,
             "year_advertisers": 20},
}

# key: (comparison, goal, unit) — the goals; figures without a goal have None
GOALS = {
    "onboarding_vs_sequential_ratio": ("<=", 0.55, ""),
    "refreshes_per_advertiser_hour": ("<=", 1.3, ""),
    "min_remaining_validity_minutes": (">=", 10, "min"),
    "refresh_throughput_speedup": (">=", 16, "×"),
    "refresh_lost": ("==", 0, ""),
    "refresh_duplicated": ("==", 0, ""),
    "secrets_calls_per_1000_reads": (None, None, ""),
    "cached_read_p50_us": (None, None, "µs"),
    "cached_read_p99_us": (None, None, "µs"),
    "cold_import_ms_max": ("<=", 300, "ms"),
    "asset_size_mb_max": ("<=", 5, "MB"),
    "cost_per_advertiser_month_usd_100": (None, None, "$"),
    "cost_per_advertiser_month_usd_1000": ("<=", 0.90, "$"),
    "cost_per_advertiser_month_usd_10000": (None, None, "$"),
}
FIGURES = tuple(GOALS)


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


def met(key: str, value) -> bool | None:
    op, goal, _unit = GOALS[key]
    if op is None:
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
    from bench import cost, footprint, inventory, live, refresh, year
    from infra.config import load_config

    s = SIZES[size]
    config = load_config(json.loads((REPO / "cdk.json").read_text())["context"]["adsauth"])
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
    _step(f"a simulated day of {s['day_advertisers']} advertisers")
    with _quiet():
        take("steady_state", refresh.steady_state(s["day_advertisers"], s["day_hours"]))
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

    inputs = {
        "refreshes_per_advertiser_hour": figures["refreshes_per_advertiser_hour"],
        "aws_calls_per_refresh": measured["aws_calls"]["per_refresh_incl_its_dispatch"],
        "aws_calls_per_idle_dispatch": measured["aws_calls"]["per_idle_dispatch"],
        "aws_calls_per_callback": measured["aws_calls"]["per_callback"],
        "secrets_calls_per_1000_reads": figures["secrets_calls_per_1000_reads"],
        "refresh_schedule_minutes": config.refresh_schedule_minutes,
        "records_at_once": getattr(worker, "RECORDS_AT_ONCE", 1),
    }
    take("cost", cost.costs(inputs, resources))
    details["cost"]["resources"] = resources
    return {
        **{key: figures[key] for key in FIGURES},
        "goals_missed": [key for key in FIGURES if met(key, figures[key]) is False],
        "size": size,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bench_seconds": round(time.monotonic() - started, 1),
        "machine": host,
        "details": details,
    }


def _value(key: str, value) -> str:
    unit = GOALS[key][2]
    if unit == "$":
        return f"${value:.3f}"
    return f"{value:g} {unit}".strip()


def table(results: dict, *, markdown: bool = False) -> str:
    from bench import year

    rows = []
    for key in FIGURES:
        op, goal, unit = GOALS[key]
        ok = met(key, results[key])
        goal_text = "—" if op is None else f"{op} {_value(key, goal)}"
        rows.append((key, _value(key, results[key]), goal_text, {True: "yes", False: "**no**" if markdown else "NO",
                                                                 None: ""}[ok]))
    rows += [(key, value, goal, {True: "yes", False: "**no**" if markdown else "NO", None: ""}[ok])
             for key, value, goal, ok in year.rows(results.get("details", {}).get("year"))]
    m = results["machine"]
    caption = (f"{results['generated_at']} on {m['arch']}, {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
               f"load average {m.get('load_average_1m_at_start', '?')} at start "
               f"({results['size']} run, {results['bench_seconds']:.0f} s)")
    header = ("figure", "value", "goal", "met")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---:|---|---|"]
        lines += ["| " + " | ".join((f"`{r[0]}`", *r[1:])) + " |" for r in rows]
        return "\n".join(lines) + f"\n\n{caption}"
    widths = [max(len(str(r[i])) for r in (*rows, header)) for i in range(4)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines) + f"\n{caption}"


def write(results: dict, path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
