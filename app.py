#!/usr/bin/env python3
"""CDK app: reads the ``adsauth`` context from cdk.json and synthesizes the AdsAuth stack.

``-c example_consumer=true`` also synthesizes ``AdsAuthExampleConsumer`` (infra/consumer_example.py),
a downstream function granted the way another CDK app grants one: ``adsauth.cdk.AdsAuthTokens``,
from the coordinates the AdsAuth stack publishes in SSM (deployed after it; no export).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# The venv's .pth already has these; be defensive when run with another interpreter.
for path in (ROOT, ROOT / "lambdas"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.config import ConfigError, load_config  # noqa: E402
from infra.consumer_example import CONTEXT_FLAG, ExampleConsumerStack  # noqa: E402
from infra.context import context_block  # noqa: E402
from infra.stack import AdsAuthStack  # noqa: E402


def build(app: cdk.App) -> AdsAuthStack:
    """The stacks ops deploy, from the app's context (cdk.json); raises ``ConfigError``.

    The ``adsauth`` block is read as the CDK CLI passed it (``context_block``), so an explicit
    ``null`` in cdk.json reaches the config: jsii drops null-valued keys from ``try_get_context``.
    """
    config = load_config(context_block(app))
    stack = AdsAuthStack(
        app, "AdsAuth", config=config, description="adsauth: LwA authorization broker"
    )
    if str(app.node.try_get_context(CONTEXT_FLAG)).lower() == "true":
        ExampleConsumerStack(
            app,
            "AdsAuthExampleConsumer",
            adsauth=stack,
            description="adsauth example: a downstream function reading brokered access tokens",
        )
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return stack


def main() -> None:
    app = cdk.App()
    try:
        build(app)
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    app.synth()


if __name__ == "__main__":
    main()
