"""Figure 5: how heavy the functions are — import time of each handler module in a fresh
interpreter (``python -X importtime``), also as a ratio to a bare ``import boto3`` measured in
the same rounds (absolute times follow the machine's load), and the size of each function's
asset as the bundler builds it (``infra.bundling``: only the ``adsauth`` modules the handler
needs; Powertools comes from the AWS-managed layer and boto3 from the runtime, so neither is
part of the asset)."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HANDLERS = ("connect", "callback", "dispatcher", "worker")
BASELINE = "boto3"  # what every function loads anyway once it makes its first AWS call

# What Lambda sets, so Powertools initialises as it does there
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "adsauth-bench",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "adsauth",
    "POWERTOOLS_METRICS_NAMESPACE": "adsauth",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def _python_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
    env.update(LAMBDA_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "lambdas")])
    return env


def _top_level_imports(stderr: str) -> dict[str, int]:
    """Cumulative microseconds of each import at the outermost level of ``-X importtime``."""
    found = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _self, cumulative, name = line[len("import time:"):].split("|", 2)
        if name.startswith("  ") or not cumulative.strip().isdigit():
            continue  # nested, or the header line
        found[name.strip()] = int(cumulative)
    return found


def _run(code: str) -> tuple[str, float]:
    """stderr of ``python -X importtime -c code`` and the CPU milliseconds the process used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=_python_env(),
                          capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return done.stderr, cpu


def import_ms(module: str) -> tuple[float, float]:
    """Milliseconds spent importing ``module`` (and everything it pulls in) in a new interpreter,
    beyond what the interpreter imports at startup anyway: wall time as ``-X importtime`` reports
    it, and the CPU time the process used beyond a bare interpreter's (for comparison on a busy
    machine, where wall time includes waiting for a core)."""
    bare, bare_cpu = _run("pass")
    startup = set(_top_level_imports(bare))
    stderr, cpu = _run(f"import {module}")
    imports = _top_level_imports(stderr)
    return sum(us for name, us in imports.items() if name not in startup) / 1000, max(0.0, cpu - bare_cpu)


def cold_imports(runs: int) -> dict:
    """Each handler's import, and a bare ``import boto3`` (what the runtime's SDK costs any
    function), measured in the same rounds: the ratio holds up on a machine whose load changes."""
    modules = {**{handler: f"adsauth.handlers.{handler}" for handler in HANDLERS}, BASELINE: BASELINE}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in modules}
    for _ in range(runs):
        for name, module in modules.items():
            samples[name].append(import_ms(module))
    wall = {name: round(statistics.median(s[0] for s in taken), 1) for name, taken in samples.items()}
    cpu = {name: round(statistics.median(s[1] for s in taken), 1) for name, taken in samples.items()}
    baseline_wall, baseline_cpu = wall.pop(BASELINE), cpu.pop(BASELINE)
    slowest = max(wall.values())
    return {"cold_import_ms_max": slowest,
            "cold_import_vs_boto3_ratio": round(slowest / baseline_wall, 2),
            "details": {"median_ms": wall, "median_cpu_ms": cpu, "boto3_median_ms": baseline_wall,
                        "boto3_median_cpu_ms": baseline_cpu, "runs": runs, "load_average": os.getloadavg()}}


def asset_sizes() -> dict:
    from infra.bundling import LAMBDAS_DIR, LocalBundler, modules_for

    sizes = {}
    for handler in HANDLERS:
        files = modules_for(f"adsauth.handlers.{handler}.handler")
        with tempfile.TemporaryDirectory(prefix="adsauth-asset-") as out:
            LocalBundler(files, LAMBDAS_DIR).try_bundle(out, None)
            sizes[handler] = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    largest = max(sizes.values())
    return {
        "asset_size_mb_max": round(largest / 1_000_000, 3),
        "details": {"bytes": sizes, "files": {h: len(modules_for(f"adsauth.handlers.{h}.handler")) for h in HANDLERS}},
    }
