"""infra.bundling: each function's asset holds the modules its handler imports and nothing else
(no dependency, no test, no local stack, no ops CLI, no cache), and the handler imports from it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.bundling import CLIENT_MODULE, LAMBDAS_DIR, LocalBundler, modules_for
from infra.constants import (
    CALLBACK_HANDLER,
    CONNECT_HANDLER,
    DISPATCHER_HANDLER,
    POWERTOOLS_VERSION,
    WORKER_HANDLER,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
HANDLERS = (CONNECT_HANDLER, CALLBACK_HANDLER, DISPATCHER_HANDLER, WORKER_HANDLER)
HANDLER_FILES = {h: "adsauth/handlers/" + h.split(".")[2] + ".py" for h in HANDLERS}
# Never in a function's asset: the ops CLI, the downstream client (it ships as its own layer).
NEVER_DEPLOYED = {"adsauth/cli.py", "adsauth/cli_import.py", "adsauth/__main__.py", "adsauth/client.py"}


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def bundle(entry: str, into: str = "", *, target: Path) -> set[str]:
    assert LocalBundler(modules_for(entry), into=into).try_bundle(str(target), None) is True
    return files_under(target)


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_closure_follows_module_level_lazy_and_relative_imports(tmp_path):
    source = write_package(
        tmp_path,
        {
            "adsauth/__init__.py": "",
            "adsauth/handlers/__init__.py": "",
            "adsauth/handlers/h.py": "from adsauth import wiring\nfrom . import helper\n",
            "adsauth/handlers/helper.py": "import json\n",
            "adsauth/handlers/other.py": "",
            "adsauth/wiring.py": "def f():\n    from adsauth.adapters.store import Store\n",
            "adsauth/adapters/__init__.py": "",
            "adsauth/adapters/store.py": "from adsauth.models import Thing\n",
            "adsauth/models.py": "Thing = 1\n",
            "adsauth/cli.py": "from adsauth import wiring\n",
            "adsauth/__pycache__/models.cpython-314.pyc": "",
        },
    )
    assert modules_for("adsauth.handlers.h.handler", source) == [
        "adsauth/__init__.py",
        "adsauth/adapters/__init__.py",
        "adsauth/adapters/store.py",
        "adsauth/handlers/__init__.py",
        "adsauth/handlers/h.py",
        "adsauth/handlers/helper.py",
        "adsauth/models.py",
        "adsauth/wiring.py",
    ]
    with pytest.raises(ValueError):
        modules_for("adsauth.handlers.missing.handler", source)


@pytest.mark.parametrize("handler", HANDLERS)
def test_each_function_asset_holds_its_handler_and_nothing_else(handler, tmp_path):
    bundled = bundle(handler, target=tmp_path)
    assert HANDLER_FILES[handler] in bundled
    assert not bundled & (set(HANDLER_FILES.values()) - {HANDLER_FILES[handler]})  # other handlers
    assert not bundled & NEVER_DEPLOYED
    assert all(f.startswith("adsauth/") and f.endswith(".py") for f in bundled)  # no deps, no caches
    for package in ("adsauth/__init__.py", "adsauth/handlers/__init__.py", "adsauth/adapters/__init__.py"):
        assert package in bundled
    # Each asset is a subset of the deployed package as it is in the repository.
    assert bundled <= {p.relative_to(LAMBDAS_DIR).as_posix() for p in (LAMBDAS_DIR / "adsauth").rglob("*.py")}


def test_the_client_layer_holds_the_client_and_what_it_imports_under_python(tmp_path):
    bundled = bundle(CLIENT_MODULE, into="python", target=tmp_path)
    assert "python/adsauth/client.py" in bundled
    assert all(f.startswith("python/adsauth/") for f in bundled)
    assert not [f for f in bundled if "/handlers/" in f or f.endswith(("/cli.py", "/wiring.py"))]


@pytest.mark.slow
@pytest.mark.parametrize("entry", [*HANDLERS, CLIENT_MODULE])
def test_every_bundled_module_imports_from_the_asset_alone(entry, tmp_path):
    """The asset is enough: every module in it (the handler and what it imports lazily) imports
    with the asset first on sys.path and any other copy of the package removed from it."""
    asset = tmp_path / "asset"
    files = bundle(entry, target=asset)
    modules = sorted(f[:-3].replace("/", ".").removesuffix(".__init__") for f in files)
    script = f"""
import importlib, json, sys
from pathlib import Path
# Hide every other copy of the package (the repository's, a worktree's on the venv's .pth).
sys.path = [{str(asset)!r}] + [p for p in sys.path if p and not (Path(p) / "adsauth").exists()]
for name in {modules!r}:
    importlib.import_module(name)
import adsauth
print(json.dumps(adsauth.__file__))
"""
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "POWERTOOLS_TRACE_DISABLED": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]).startswith(str(asset))


def _module_path(handler: str) -> Path:
    module = handler.rpartition(".")[0]
    return LAMBDAS_DIR / (module.replace(".", "/") + ".py")


@pytest.mark.parametrize("handler", HANDLERS)
def test_handlers_named_by_the_stack_exist_in_the_package(handler):
    module, _, function = handler.rpartition(".")
    path = _module_path(handler)
    assert path.is_file(), f"{handler}: {path} is missing"
    assert re.search(rf"^def {function}\(", path.read_text(), re.MULTILINE), handler


def test_powertools_layer_version_matches_the_pin():
    pins = (REPO_ROOT / "requirements.txt").read_text()
    assert re.search(
        rf"^aws-lambda-powertools(\[[^\]]*\])?=={re.escape(POWERTOOLS_VERSION)}$", pins, re.MULTILINE
    ), "infra.constants.POWERTOOLS_VERSION must equal the version pinned in requirements.txt"
