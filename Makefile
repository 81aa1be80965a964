# The two commands a fresh machine needs: `make demo` and `make test`. Every target sets up
# the virtual environment (.venv, pinned packages) it depends on.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | sha1sum | cut -c1-12)
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv test demo local synth node-version schema unit integration infra e2e browser iam-simulator clean bench

venv: $(STAMP)
	@# put this checkout's root (infra, local, bench, tests) on the venv's path; written on every
	@# run so the venv always serves the checkout it sits in
	@$(PY) -c 'import site,sys; open(site.getsitepackages()[0]+"/adsauth-repo.pth","w").write("\n".join(sys.argv[1:])+"\n")' "$(CURDIR)"
	@# the adsauth package is installed as users install it (pyproject.toml: the `adsauth` command,
	@# its metadata), editable; again when it serves another checkout (offline: no build isolation)
	@$(PY) -c 'import adsauth,sys; sys.exit(adsauth.__file__ != sys.argv[1])' "$(CURDIR)/lambdas/adsauth/__init__.py" 2>/dev/null \
	  || $(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned packages and adsauth (editable) into $(VENV) ..." >&2
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

test: venv browser iam-simulator
	$(PY) -m pytest

# The offline IAM policy simulator of the suite's last test (tests/iam: @cloud-copilot/iam-simulate,
# AGPL, test-time only: never bundled, never deployed), at the versions package-lock.json pins.
# Installed again only when the lock changes; a tree that already matches it is kept, so a machine
# without network runs with what node_modules holds. Without it the IAM simulation test fails.
IAM_SIM := tests/iam
IAM_SIM_STAMP := $(IAM_SIM)/node_modules/.installed-$(shell sha1sum $(IAM_SIM)/package-lock.json | cut -c1-12)
iam-simulator: $(IAM_SIM_STAMP)

$(IAM_SIM_STAMP): $(IAM_SIM)/package.json $(IAM_SIM)/package-lock.json
	@if ! command -v npm >/dev/null; then \
	  echo "iam simulator: npm is missing (Node.js, which the CDK needs too); the IAM simulation test will fail" >&2; \
	elif npm ls --prefix $(IAM_SIM) --all >/dev/null 2>&1; then \
	  rm -f $(IAM_SIM)/node_modules/.installed-*; touch $@; \
	elif echo "installing the pinned IAM simulator into $(IAM_SIM)/node_modules ..." >&2 && \
	    npm ci --prefix $(IAM_SIM) --prefer-offline --no-audit --no-fund --ignore-scripts --loglevel=error; then \
	  rm -f $(IAM_SIM)/node_modules/.installed-*; touch $@; \
	else \
	  echo "iam simulator: npm ci failed; the IAM simulation test will fail" >&2; \
	fi

# Debian's headless Chromium and its driver for the real-browser tests (tests/e2e), installed when
# missing and the machine allows it (root and apt-get); never a downloaded browser. Without them
# the browser tests are skipped, or fail when CI=true.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
	  :; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "browser tests: chromium/chromium-driver are missing and installing them needs root (apt-get install -y chromium chromium-driver)" >&2; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "browser tests: chromium/chromium-driver are missing and this machine has no apt-get" >&2; \
	else \
	  echo "installing Debian's chromium and chromium-driver for the browser tests ..." >&2; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	    || echo "browser tests: installing chromium and chromium-driver with apt-get failed" >&2; \
	fi

unit: venv
	$(PY) -m pytest tests/unit

integration: venv
	$(PY) -m pytest tests/integration

infra: venv
	$(PY) -m pytest tests/infra

e2e: venv browser
	$(PY) -m pytest tests/e2e

demo: venv
	$(PY) -m local.demo

local: venv
	$(PY) -m local.run

synth: venv node-version
	npx --yes aws-cdk@2 synth --quiet

# The CDK CLI supports Node 22 and newer (it calls Node 20 unsupported since 2026-10-30). An
# older Node still synthesizes, so this only warns, on one line of stderr.
NODE_MIN_MAJOR := 22
node-version:
	@version=$$(node --version 2>/dev/null); major=$${version#v}; major=$${major%%.*}; \
	if [ -z "$$version" ]; then \
	  echo "warning: node not found; the CDK CLI needs Node.js $(NODE_MIN_MAJOR) or newer (see docs/runbook.md, Prerequisites)" >&2; \
	elif [ "$$major" -lt $(NODE_MIN_MAJOR) ] 2>/dev/null; then \
	  echo "warning: Node.js $$version is older than $(NODE_MIN_MAJOR), which the CDK CLI no longer supports; synth still runs, but upgrade to Node.js $(NODE_MIN_MAJOR)+" >&2; \
	fi

# docs/cdk-json.schema.json, the JSON Schema of cdk.json's adsauth block, from infra/config.py.
schema: venv
	$(PY) -m infra.config

# The figures of issue 5 on the local stack (~5-10 minutes on 2 cores): a table, and
# bench/results.json (see docs/benchmarks.md). Timings are compared within one run.
bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) cdk.out .pytest_cache $(IAM_SIM)/node_modules
