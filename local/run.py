"""``make local``: run the local stack in the foreground and print a link to click through."""

from __future__ import annotations

import os
import signal
import threading

os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")


def main() -> int:
    from local.stack import LocalStack

    with LocalStack() as stack:
        advertiser_id, link = stack.invite(name="Acme Outdoor", email="ads@acme.example", region="NA")
        print(f"adsauth local stack is up: API {stack.base_url}, LwA emulator {stack.emulator.base_url}")
        print(f"AWS (moto server): {os.environ['AWS_ENDPOINT_URL']}")
        print(f"\nInvitation for advertiser {advertiser_id} — open it in a browser and click Allow:\n\n    {link}\n")
        print("More invitations, in another shell with the same environment:")
        print(f"    AWS_ENDPOINT_URL={os.environ['AWS_ENDPOINT_URL']} TABLE_NAME={os.environ['TABLE_NAME']} "
              f"PUBLIC_BASE_URL={stack.base_url} LWA_CLIENT_ID={os.environ['LWA_CLIENT_ID']} "
              f"LWA_CLIENT_SECRET_NAME={os.environ['LWA_CLIENT_SECRET_NAME']} SECRET_PREFIX={os.environ['SECRET_PREFIX']} "
              "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 "
              ".venv/bin/python -m adsauth invite --name 'Other Shop' --email ops@other.example")
        print("\nCtrl-C stops everything.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
