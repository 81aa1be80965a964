"""Reading the app's context as the CDK CLI passed it, ``null`` values intact."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONTEXT_KEY = "adsauth"
# What the CDK CLI sets for the app (aws-cdk-lib cx-api: CONTEXT_ENV, CONTEXT_OVERFLOW_LOCATION_ENV;
# the CLI moves top-level keys to the overflow file when the context outgrows an env variable).
CONTEXT_ENV = "CDK_CONTEXT_JSON"
CONTEXT_OVERFLOW_ENV = "CONTEXT_OVERFLOW_LOCATION_ENV"


def context_block(app: Any, key: str = CONTEXT_KEY) -> Any:
    """The raw ``key`` block of the app's context, ``null`` values intact.

    The CDK CLI passes the context as JSON in ``CDK_CONTEXT_JSON`` and, when that would outgrow an
    environment variable, moves top-level keys into the file named by
    ``CONTEXT_OVERFLOW_LOCATION_ENV`` (the file wins, as in ``aws_cdk.App``). Read there first:
    ``try_get_context`` goes through jsii, which drops null-valued keys. Without the CLI (an App
    built in a test with ``context=``), fall back to ``try_get_context``.
    """
    context: dict[str, Any] = {}
    encoded = os.environ.get(CONTEXT_ENV)
    if encoded:
        context.update(json.loads(encoded))
    overflow = os.environ.get(CONTEXT_OVERFLOW_ENV)
    if overflow:
        context.update(json.loads(Path(overflow).read_text()))
    if key in context:
        return context[key]
    return app.node.try_get_context(key)
