"""Docker-free asset bundling: each function's asset holds only the modules its handler imports.

The deployed code is the ``adsauth`` package, but no function needs all of it. The closure finder
and the copying bundler live in ``adsauth.cdk.bundling`` (the same code builds the client layer of
``adsauth.cdk.AdsAuthTokens`` in other CDK apps); here they are pointed at this checkout's
``lambdas/``. The connect function does not ship the refresher, the worker does not ship the
pages, no function ships the downstream client, the ops CLI or the CDK code.

No dependency is bundled: Powertools (with pydantic and the X-Ray SDK) comes from the AWS-managed
layer, boto3 from the runtime. Copying is all bundling has to do, so it runs locally and synth
needs no Docker.
"""

from __future__ import annotations

from pathlib import Path

from adsauth.cdk import bundling as _bundling
from adsauth.cdk.bundling import CLIENT_MODULE, LAYER_MODULE, PACKAGE, modules_asset
from aws_cdk import aws_lambda as lambda_

__all__ = [
    "CLIENT_MODULE",
    "LAMBDAS_DIR",
    "PACKAGE",
    "LocalBundler",
    "client_layer_code",
    "function_code",
    "modules_for",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = REPO_ROOT / "lambdas"


# This app bundles from its checkout, whichever copy of the package the interpreter imports.
def modules_for(entry: str, source_dir: Path = LAMBDAS_DIR) -> list[str]:
    return _bundling.modules_for(entry, source_dir)


class LocalBundler(_bundling.LocalBundler):
    def __init__(self, files: list[str], source_dir: Path = LAMBDAS_DIR, into: str = ""):
        super().__init__(files, source_dir, into)


def function_code(handler: str, source_dir: Path = LAMBDAS_DIR) -> lambda_.Code:
    """The asset of one function: the modules its handler needs, nothing else."""
    return modules_asset(modules_for(handler, source_dir), source_dir, into="")


def client_layer_code(source_dir: Path = LAMBDAS_DIR) -> lambda_.Code:
    """``adsauth.client`` and what it imports, under ``python/``, from this checkout."""
    return modules_asset(modules_for(LAYER_MODULE, source_dir), source_dir, into="python")
