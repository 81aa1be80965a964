"""The README and docs/ against the code: the reader's path, links and anchors that resolve, no
secret on a command line, stack outputs and CLI commands that exist, a configuration table with
every key and its real default, and a benchmark table that is the one bench/results.json gives."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from infra.config import AdsAuthConfig
from tests.infra.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").rglob("*.md"))
# The order a new reader needs (issue 12): what it is, quick start, deploy, invite, downstream, config.
READER_PATH = ["Quick start", "Deploy", "Invite an advertiser", "Use tokens downstream", "Configuration", "More"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _text(path: Path) -> str:
    return path.read_text()


def _shell_blocks(path: Path) -> list[str]:
    return [block for block in FENCE.findall(_text(path))]


def _commands(path: Path) -> list[str]:
    """Shell commands of the code blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in _shell_blocks(path):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    outside = re.sub(FENCE, "", _text(path))  # a '#' line in a code block is no heading
    for heading in re.findall(r"^#{1,6} (.+)$", outside, flags=re.MULTILINE):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_the_readme_reads_in_the_readers_order():
    headings = re.findall(r"^## (.+)$", re.sub(FENCE, "", _text(README)), flags=re.MULTILINE)
    assert headings == READER_PATH
    readme = _text(README)
    assert "<!-- DOWNSTREAM-CDK -->" in readme or "AdsAuthTokens" in readme
    assert "<!-- DOWNSTREAM-AD-API -->" in readme or "ad_api" in readme


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_and_anchor_resolves(path):
    for target in LINK.findall(re.sub(FENCE, "", _text(path))):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.exists(), f"{path.name}: {target} does not exist"
        if anchor:
            assert linked.suffix == ".md", target
            assert anchor in _anchors(linked), f"{path.name}: {target}: no such heading in {linked.name}"


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_secret_is_ever_typed_on_a_command_line(path):
    """A secret on a command line stays in shell history and the process list: every command that
    writes one reads it from a file, and the docs never show a secret value inline."""
    for command in _commands(path):
        if re.search(r"secretsmanager (put-secret-value|create-secret|update-secret)\b", command):
            assert re.search(r"--secret-string \"?file://", command), f"{path.name}: {command}"
    text = _text(path)
    assert not re.search(r"client_secret\"?\s*:\s*\"[^\"%{]", text), path.name  # no literal value
    assert "--secret-string '{" not in text, path.name


def test_the_client_secret_is_read_without_echo_and_its_file_removed():
    block = next(b for b in _shell_blocks(README) if "put-secret-value" in b)
    assert "getpass" in block or "read -rs" in block  # typed without echo, not an argument
    assert "umask 077" in block  # the file only its owner can read ...
    assert "rm -f" in block and "trap" in block  # ... removed even when a step fails


def test_every_stack_output_the_docs_name_exists(cfn, domain_cfn):
    """``out Name`` reads a stack output; a misspelt one would print 'None'."""
    outputs = set(cfn["Outputs"]) | set(domain_cfn["Outputs"])
    for path in (README, *DOCS):
        for name in re.findall(r"\bout ([A-Z][A-Za-z]+)\b", _text(path)):
            assert name in outputs, f"{path.name}: out {name}"


def test_every_adsauth_command_in_the_docs_parses():
    """Each ``adsauth …`` line of README.md and docs/runbook.md is a valid command line for the
    installed CLI (options where the docs put them, values the CLI accepts)."""
    from adsauth.cli import build_parser

    checked = 0
    for path in (README, REPO_ROOT / "docs" / "runbook.md"):
        for command in _commands(path):
            if not command.startswith("adsauth "):
                continue
            words = shlex.split(command, comments=True)
            for stop in ("|", "<", ">", "&&", ";"):
                words = words[: words.index(stop)] if stop in words else words
            try:
                build_parser().parse_args(words[1:])
            except SystemExit as exc:  # --version and --help end here with 0
                if exc.code != 0:
                    pytest.fail(f"{path.name}: `{command}` is refused by the CLI (exit {exc.code})")
            checked += 1
    assert checked >= 8  # the invite section's session at least


def _config_rows() -> dict[str, list[str]]:
    section = _text(README).split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| `") and len(cells) == 4:
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_configuration_table_has_every_key_and_its_real_default():
    rows = _config_rows()
    fields = AdsAuthConfig.model_fields
    assert set(rows) == set(fields), (sorted(set(fields) - set(rows)), sorted(set(rows) - set(fields)))
    for key, field in fields.items():
        shown = rows[key][2]
        if field.is_required():
            assert shown == "required", key
            continue
        default = list(field.default) if isinstance(field.default, tuple) else field.default
        expected = default if isinstance(default, str) else json.dumps(default, separators=(", ", ": "))
        assert shown == f"`{expected}`", (key, shown, expected)


def test_the_benchmark_table_is_the_one_the_results_give():
    """docs/benchmarks.md shows bench/results.json as ``python -m bench --markdown`` prints it."""
    from bench import harness

    doc = _text(REPO_ROOT / "docs" / "benchmarks.md")
    start, end = "<!-- bench-table: python -m bench --markdown -->\n", "\n<!-- /bench-table -->"
    assert start in doc and end in doc
    shown = doc.split(start, 1)[1].split(end, 1)[0]
    assert shown == harness.table(json.loads(harness.RESULTS.read_text()), markdown=True)
