"""``make bench``: measure the figures of issue 5 and write ``bench/results.json``.

    python -m bench                 # the full run (~10 minutes on 2 cores)
    python -m bench --size tiny     # seconds: checks the harness works, figures meaningless
    python -m bench --out PATH      # write the results elsewhere
    python -m bench --markdown      # print the table of bench/results.json for docs/benchmarks.md
                                    # (paste it between that file's bench-table markers)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for path in (REPO / "lambdas", REPO):  # this checkout's code, whatever the venv's .pth says
    sys.path.insert(0, str(path))

# before any handler module is imported: Powertools reads these once
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "adsauth")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "adsauth-bench")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


def main(argv: list[str] | None = None) -> int:
    from bench import harness

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(harness.SIZES), default="full")
    parser.add_argument("--out", type=Path, default=harness.RESULTS)
    parser.add_argument("--markdown", action="store_true",
                        help="print the table of --out for docs/benchmarks.md (between its bench-table markers) and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(harness.table(json.loads(args.out.read_text()), markdown=True))
        return 0
    results = harness.run(args.size)
    harness.write(results, args.out)
    print(harness.table(results))
    print(f"written to {args.out}")
    if results["goals_missed"]:
        print("goals missed: " + ", ".join(results["goals_missed"]) + " (see docs/benchmarks.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
