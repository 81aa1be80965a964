"""Docker-free asset bundling for the functions.

The deployed asset is only the ``adsauth`` package: no dependencies (Powertools comes from the
AWS-managed layer, boto3 from the runtime), no ``__pycache__``, and not the ops CLI. Copying is all
bundling has to do, so it runs locally and synth needs no Docker.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.constants import CLI_MODULES

PACKAGE = "adsauth"
REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = REPO_ROOT / "lambdas"

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".DS_Store")


def _docker_command(into: str) -> list[str]:
    """Only used if local bundling ever declines; it does the same as LocalBundler."""
    target = f"/asset-output/{into}".rstrip("/")
    return [
        "bash",
        "-c",
        f"mkdir -p {target} && cp -r /asset-input/{PACKAGE} {target}/"
        " && find /asset-output -name __pycache__ -prune -exec rm -rf {} +"
        + "".join(f" && rm -f {target}/{PACKAGE}/{name}" for name in sorted(CLI_MODULES)),
    ]


def _ignore(package_dir: Path):
    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(_IGNORED(directory, names))
        if Path(directory).resolve() == package_dir:
            ignored |= CLI_MODULES.intersection(names)
        return ignored

    return ignore


@jsii.implements(ILocalBundling)
class LocalBundler:
    """Copies ``<source_dir>/adsauth`` into the asset output (or its ``into`` folder), without
    caches and the ops CLI."""

    def __init__(self, source_dir: Path = LAMBDAS_DIR, into: str = ""):
        self.source_dir = Path(source_dir).resolve()
        self.into = into

    # jsii passes the bundling options positionally, as one struct.
    def try_bundle(self, output_dir: str, options) -> bool:  # noqa: ARG002
        package_dir = self.source_dir / PACKAGE
        shutil.copytree(
            package_dir,
            Path(output_dir) / self.into / PACKAGE,
            ignore=_ignore(package_dir),
            dirs_exist_ok=True,
        )
        return True


def function_code(source_dir: Path = LAMBDAS_DIR) -> lambda_.Code:
    """The one code asset shared by every adsauth function.

    The hash is taken from the bundled output, so a deploy happens exactly when the shipped files
    change (not when a test run leaves ``__pycache__`` behind).
    """
    return _package_asset(source_dir, into="")


def client_layer_code(source_dir: Path = LAMBDAS_DIR) -> lambda_.Code:
    """The same package as a Lambda layer (under ``python/``, which the runtime puts on
    ``sys.path``), for downstream functions that ``from adsauth.client import ...``."""
    return _package_asset(source_dir, into="python")


def _package_asset(source_dir: Path, *, into: str) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(source_dir),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            image=DockerImage.from_registry("unused"),
            local=LocalBundler(source_dir, into=into),
            command=_docker_command(into),
        ),
    )
