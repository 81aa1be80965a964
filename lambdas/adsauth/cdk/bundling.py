"""Docker-free bundling of ``adsauth`` modules into Lambda assets, from the files of the package as
installed (a wheel in site-packages, or this checkout's ``lambdas/``).

``modules_for`` reads the package's import statements (``ast``, nothing is executed) and follows
them from an entry module: every ``adsauth`` module it imports, at module level or inside a
function (lazy imports), transitively, plus the ``__init__.py`` of each package on the way. That is
a superset of what the entry can ever import, so nothing is missing at run time, and nothing
outside the closure (handlers, the ops CLI, this CDK code) is shipped.

No dependency is bundled (boto3 comes from the Lambda runtime), so bundling is copying: it runs
locally and synth needs no Docker.
"""

from __future__ import annotations

import ast
import shutil
from functools import lru_cache
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

PACKAGE = "adsauth"
CLIENT_MODULE = "adsauth.client"  # what downstream functions import from the client layer
# The layer's entry: adsauth.client's closure plus adsauth/ad_api.py, the python-amazon-ad-api
# shim (it imports that library only when called, so the layer does not carry it).
LAYER_MODULE = "adsauth.ad_api"
# The directory holding the installed ``adsauth`` package (adsauth/cdk/bundling.py → its parent).
INSTALLED_ROOT = Path(__file__).resolve().parents[2]


def _module_file(source_dir: Path, module: str) -> Path | None:
    base = source_dir.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every module name an ``import`` or ``from … import`` in the file may refer to."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module or ""
            names.add(origin)
            # ``from adsauth import schema`` imports the module adsauth.schema
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    return names


@lru_cache(maxsize=None)
def _closure(source_dir: Path, root: str) -> frozenset[str]:
    seen: set[str] = set()
    pending = [root]
    while pending:
        module = pending.pop()
        if module in seen or not (module == PACKAGE or module.startswith(PACKAGE + ".")):
            continue
        path = _module_file(source_dir, module)
        if path is None:  # an attribute imported from a module (``from x import name``)
            continue
        seen.add(module)
        pending.extend(_imports(path, module))
        parent = module.rpartition(".")[0]
        if parent:
            pending.append(parent)  # its package's __init__.py runs first
    return frozenset(seen)


def modules_for(entry: str, source_dir: Path = INSTALLED_ROOT) -> list[str]:
    """The package-relative files (``adsauth/…/x.py``) that ``entry`` (a module, or a handler
    ``module.function``) needs, sorted."""
    source_dir = Path(source_dir).resolve()
    module = entry
    if _module_file(source_dir, module) is None:  # a handler: strip the function name
        module = entry.rpartition(".")[0]
    if _module_file(source_dir, module) is None:
        raise ValueError(f"{entry}: no module {module} under {source_dir}")
    files = set()
    for name in _closure(source_dir, module):
        path = _module_file(source_dir, name)
        assert path is not None
        files.add(path.relative_to(source_dir).as_posix())
    return sorted(files)


def _docker_command(files: list[str], into: str) -> list[str]:
    """Only used if local bundling ever declines; it copies the same files as LocalBundler. It
    also makes each asset's bundling options (and so its cache key) differ by content."""
    target = f"/asset-output/{into}".rstrip("/")
    copies = " && ".join(f"install -D -m 644 /asset-input/{f} {target}/{f}" for f in files)
    return ["bash", "-c", copies]


@jsii.implements(ILocalBundling)
class LocalBundler:
    """Copies ``files`` (paths relative to ``source_dir``) into the asset output, under ``into``."""

    def __init__(self, files: list[str], source_dir: Path = INSTALLED_ROOT, into: str = ""):
        self.files = list(files)
        self.source_dir = Path(source_dir).resolve()
        self.into = into

    # jsii passes the bundling options positionally, as one struct.
    def try_bundle(self, output_dir: str, options) -> bool:  # noqa: ARG002
        for name in self.files:
            target = Path(output_dir) / self.into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.source_dir / name, target)
        return True


def modules_asset(files: list[str], source_dir: Path = INSTALLED_ROOT, *, into: str = "") -> lambda_.Code:
    """An asset of exactly ``files``. Its hash is taken from the bundled output, so it changes
    exactly when the shipped files do (not when an unrelated module or a ``__pycache__`` does)."""
    return lambda_.Code.from_asset(
        str(source_dir),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            image=DockerImage.from_registry("unused"),
            local=LocalBundler(files, source_dir, into=into),
            command=_docker_command(files, into),
        ),
    )


def client_layer_code(source_dir: Path = INSTALLED_ROOT) -> lambda_.Code:
    """``adsauth.client`` and what it imports, and the ``adsauth.ad_api`` shim, as a Lambda layer
    (under ``python/``, which the runtime puts on ``sys.path``), for functions that
    ``from adsauth.client import …``."""
    return modules_asset(modules_for(LAYER_MODULE, source_dir), source_dir, into="python")
