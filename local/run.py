"""``make local``: run the local stack in the foreground, print a link to click through and the
environment another shell needs for the ``adsauth`` command to work against this stack."""

from __future__ import annotations

import os
import shlex
import signal
import threading


def stack_environment(stack) -> dict[str, str]:
    """Every variable the local stack set for its functions (AWS endpoint and dummy credentials,
    region, table, secrets, queue, topic, bus, the emulator's LwA and Ads API endpoints …): what
    the ``adsauth`` command reads too. Values only: the LwA client secret is in (moto's) Secrets
    Manager, never in the environment."""
    return {name: os.environ[name] for name in sorted(stack._saved_env) if name in os.environ}


def environment_block(stack) -> str:
    """``export NAME=value`` lines, shell-quoted, for ``source``/pasting into another shell; without
    the emulator's endpoints there a refresh would go to the real api.amazon.com."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in stack_environment(stack).items())


def main() -> int:
    # set here, not at import: tests import this module, and their functions' metrics must flow
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from local.stack import LocalStack

    with LocalStack() as stack:
        advertiser_id, link = stack.invite(name="Acme Outdoor", email="ads@acme.example", region="NA")
        print(f"adsauth local stack is up: API {stack.base_url}, LwA emulator {stack.emulator.base_url}")
        print(f"AWS (moto server): {os.environ['AWS_ENDPOINT_URL']}")
        print(f"\nInvitation for advertiser {advertiser_id}: open it in a browser and click Allow:\n\n    {link}\n")
        print("In another shell, paste this environment (it points adsauth at this stack and its emulator):\n")
        print(environment_block(stack))
        print("\nthen, from this checkout (or with `adsauth` on your PATH):\n")
        print("    .venv/bin/adsauth list")
        print("    .venv/bin/adsauth invite --name 'Other Shop' --email ops@other.example")
        print("\nCtrl-C stops everything.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
