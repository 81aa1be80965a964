"""adsauth as users install it: the wheel built from this checkout, its metadata and contents, and
the ``adsauth`` command in a fresh virtual environment holding nothing but the wheel and boto3's
dependency closure (no CDK, moto, Selenium, Powertools or pydantic), run against the local stack.

Offline: the wheel is built without build isolation (setuptools from .venv, pinned in
requirements-dev.txt) and installed with ``--no-index``; boto3 and its dependencies are the ones
.venv has, linked in through a ``.pth`` file."""

from __future__ import annotations

import email.parser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import adsauth
from local.run import stack_environment
from tests.stack_fixtures import remembered_tokens

REPO = Path(__file__).resolve().parents[2]
VERSION = "0.12.0"
# what the checkout holds beside the package: none of it is in the wheel
NOT_PACKAGED = ("tests", "local", "infra", "bench", "app.py", "docs")
# never an unconditional dependency: the development environment's weight, or the functions' layer
HEAVY = {"aws-cdk-lib", "constructs", "cdk-nag", "moto", "selenium", "aws-lambda-powertools", "pydantic",
         "pydantic-core", "aws-xray-sdk", "cfn-lint", "requests"}
EXTRAS = {
    "cdk": {"aws-cdk-lib": ">=2.275.0,<3", "constructs": ">=10.8.1,<11"},
    "ad-api": {"python-amazon-ad-api": "==1.2.9"},
    "lambda": {"aws-lambda-powertools": "==3.37.0", "pydantic": "==2.14.3"},
}
# top-level modules the minimal environment must not have (so that importing one fails there)
ABSENT = ("aws_lambda_powertools", "pydantic", "pydantic_core", "aws_xray_sdk", "moto", "aws_cdk", "selenium")
# runs one CLI command in-process and records which of ABSENT it loaded (to the file ADSAUTH_PROBE names)
PROBE = """
import json, os, sys
from adsauth.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
absent = set(os.environ["ADSAUTH_ABSENT"].split(","))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in absent)
with open(os.environ["ADSAUTH_PROBE"], "w") as f:
    json.dump({"code": code, "loaded": loaded}, f)
sys.exit(code)
"""


def _sh(*argv: str | Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert result.returncode == 0, f"{argv}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of the checkout (a build writes build/ and *.egg-info beside the sources:
    not in the tree others work in). The copy keeps tests/, local/, infra/ …: the wheel must leave
    them out by itself."""
    source = tmp_path_factory.mktemp("source") / "adsauth"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "cdk.out", "node_modules", "test-artifacts", ".pytest_cache", ".hypothesis",
        "__pycache__", "build", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--disable-pip-version-check", "--quiet", "--wheel-dir", out, source)
    (built,) = out.glob("adsauth-*.whl")
    return built


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        return email.parser.Parser().parsestr(z.read(f"adsauth-{VERSION}.dist-info/METADATA").decode())


def test_the_only_unconditional_dependency_is_boto3(wheel):
    meta = _metadata(wheel)
    assert meta["Name"] == "adsauth" and meta["Version"] == VERSION == adsauth.__version__
    assert meta["Requires-Python"] == ">=3.11"
    requirements = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    unconditional = [r for r in requirements if r.marker is None]
    assert [canonicalize_name(r.name) for r in unconditional] == ["boto3"]
    assert unconditional[0].specifier.contains("1.44.5") and not unconditional[0].specifier.contains("2.0.0")
    assert not {canonicalize_name(r.name) for r in unconditional} & HEAVY


def test_extras_bring_the_cdk_the_ad_api_library_and_the_functions_layer(wheel):
    meta = _metadata(wheel)
    assert set(meta.get_all("Provides-Extra")) == set(EXTRAS)
    by_extra: dict[str, dict[str, str]] = {}
    for r in (Requirement(r) for r in meta.get_all("Requires-Dist")):
        if r.marker is None:
            continue
        (extra,) = [e for e in EXTRAS if r.marker.evaluate({"extra": e})]
        by_extra.setdefault(extra, {})[canonicalize_name(r.name)] = str(r.specifier)
    assert {e: {n: set(s.split(",")) for n, s in d.items()} for e, d in by_extra.items()} == \
        {e: {n: set(s.split(",")) for n, s in d.items()} for e, d in EXTRAS.items()}


def test_the_wheel_holds_the_package_and_its_type_marker_only(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = z.read(f"adsauth-{VERSION}.dist-info/entry_points.txt").decode()
    assert {n.split("/", 1)[0] for n in names} == {"adsauth", f"adsauth-{VERSION}.dist-info"}
    assert not [n for n in names if n.split("/", 1)[0] in NOT_PACKAGED or "/tests/" in n]
    assert "adsauth/py.typed" in names and "adsauth/client.py" in names
    # every module of the checkout's package, sub-packages included (adapters, handlers, cdk …)
    modules = {p.relative_to(REPO / "lambdas").as_posix() for p in (REPO / "lambdas" / "adsauth").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules - set(names) == set()
    assert "[console_scripts]\nadsauth = adsauth.cli:main" in entry_points


def _closure(root: str) -> list[metadata.Distribution]:
    """``root`` and what it requires, transitively, as installed in this (.venv) environment."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        dist = seen[name] = metadata.distribution(name)
        for text in dist.requires or ():
            r = Requirement(text)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
    return list(seen.values())


@pytest.fixture(scope="module")
def minimal_venv(wheel, tmp_path_factory) -> Path:
    """A new venv (no system site packages) with the wheel installed without its dependencies and
    without an index, and boto3's closure linked in from .venv: what `pip install adsauth` gives."""
    root = tmp_path_factory.mktemp("minimal")
    venv = root / "venv"
    _sh(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "--disable-pip-version-check", "--quiet", wheel)
    deps = root / "boto3-closure"
    deps.mkdir()
    linked = set()
    for dist in _closure("boto3"):
        base = Path(dist.locate_file(""))
        for file in dist.files or ():
            top = file.parts[0]
            if top in linked or top.startswith("..") or top.endswith(".pth") or top == "__pycache__":
                continue
            linked.add(top)
            (deps / top).symlink_to(base / top)
    assert {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3"} <= linked
    site = _sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(site, "boto3-closure.pth").write_text(f"{deps}\n")
    return venv


def _env(home: Path, **extra: str) -> dict[str, str]:
    """No PYTHONPATH, no AWS profile of the machine: only what is given."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **extra}


def test_the_minimal_environment_has_boto3_and_nothing_heavy(minimal_venv, tmp_path):
    """The control for the tests below: there, an import of any of ABSENT fails, so a command
    that needed one could not pass unnoticed."""
    python = minimal_venv / "bin" / "python"
    found = _sh(python, "-c", "import importlib.util as u, json, sys; "
                f"print(json.dumps({{m: u.find_spec(m) is not None for m in {ABSENT + ('boto3', 'adsauth')!r}}}))",
                env=_env(tmp_path)).stdout
    assert json.loads(found) == {**{m: False for m in ABSENT}, "boto3": True, "adsauth": True}
    handler = _sh(python, "-c", "import adsauth.handlers.common", env=_env(tmp_path), check=False)
    assert handler.returncode == 1 and "No module named 'aws_lambda_powertools'" in handler.stderr


def test_version_and_help_work_with_boto3_alone(minimal_venv, tmp_path):
    command = minimal_venv / "bin" / "adsauth"
    version = _sh(command, "--version", env=_env(tmp_path))
    assert version.stdout.strip() == f"adsauth {VERSION}"
    helped = _sh(command, "--help", env=_env(tmp_path))
    assert helped.stdout.startswith("usage: adsauth") and "invite" in helped.stdout
    assert "Traceback" not in version.stderr + helped.stderr


def test_the_client_imports_with_boto3_alone(minimal_venv, tmp_path):
    probe = _sh(minimal_venv / "bin" / "python", "-c",
                "import sys, adsauth.client; "
                f"print(sorted(m for m in sys.modules if m.split('.')[0] in {ABSENT!r}))",
                env=_env(tmp_path))
    assert probe.stdout.strip() == "[]"


def _probe(venv: Path, tmp_path: Path, env: dict[str, str], *argv: str) -> tuple[subprocess.CompletedProcess, dict]:
    record = tmp_path / f"probe-{argv[0]}.json"
    run = _sh(venv / "bin" / "python", "-c", PROBE, *argv, check=False,
              env=_env(tmp_path, **env, ADSAUTH_PROBE=str(record), ADSAUTH_ABSENT=",".join(ABSENT)))
    return run, json.loads(record.read_text())


def test_the_installed_command_lists_shows_and_refreshes_on_the_local_stack(stack, flow, minimal_venv, tmp_path):
    f = flow()
    f.consent("allow")
    assert f.callback().status_code == 303
    before = remembered_tokens(f.advertiser_id)
    env = stack_environment(stack)
    # the console script itself, as a user runs it
    listed = _sh(minimal_venv / "bin" / "adsauth", "list", "--output", "json", env=_env(tmp_path, **env))
    advertisers = json.loads(listed.stdout)["advertisers"]
    assert f.advertiser_id in {a["advertiser_id"] for a in advertisers}
    # the same commands in-process, to see what they imported; refresh reads the LwA client secret
    # without Powertools (wiring's boto3 fallback) and goes to the emulator
    for argv in (["list", "--output", "json"], ["show", f.advertiser_id], ["refresh", f.advertiser_id]):
        run, seen = _probe(minimal_venv, tmp_path, env, *argv)
        assert (run.returncode, seen) == (0, {"code": 0, "loaded": []}), run.stderr
        assert "Traceback" not in run.stderr
        for token in before["refresh_token"], before["access_token"]:
            assert token not in run.stdout + run.stderr
    after = remembered_tokens(f.advertiser_id)
    assert after["access_token"] != before["access_token"] and after["expires_at"] >= before["expires_at"]
