# Two commands do everything on a fresh machine:
#   make demo   - the main job (bootstraps first)
#   make test   - the whole test suite (bootstraps first)
SHELL := /bin/bash
PYTHON ?= python3
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
export PIPENV_IGNORE_VIRTUALENVS := 1
# jsii prints an end-of-life banner for Node 20 on every synth.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
PIPENV := $(PYTHON) -m pipenv
VENV := .venv
CHECKOV := .tools/checkov/bin/checkov
NPM := $(shell command -v npm 2>/dev/null)

# Offline Terraform: when TF_PROVIDER_MIRROR is not given, use a hashicorp/aws provider mirror
# found on this machine, if any (its root holds registry.terraform.io/). Empty means download.
ifeq ($(origin TF_PROVIDER_MIRROR),undefined)
TF_PROVIDER_MIRROR := $(shell find / \( -path /proc -o -path /sys \) -prune -o -type f \
	-name 'terraform-provider-aws_*' -path '*/registry.terraform.io/*' -print -quit 2>/dev/null \
	| sed 's|/registry.terraform.io/.*||')
endif
export TF_PROVIDER_MIRROR

.PHONY: bootstrap demo demo-real-account detect-dataset test detect lint snapshot plan validate synth bench clean

bootstrap: $(VENV)/.synced $(CHECKOV) $(if $(NPM),node_modules/.bootstrapped,npm-missing)

$(VENV)/.synced: Pipfile.lock
	@$(PYTHON) -m pipenv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet pipenv
	$(PIPENV) sync --dev
	@touch $@

# The cdktf CLI pinned in package-lock.json, for make deploy/diff/destroy/deploy-local only (the
# demo and the tests run without it). Installed with npm ci when npm is on PATH.
node_modules/.bootstrapped: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: npm-missing
npm-missing:
	@echo "note: npm is not on PATH: skipped the cdktf CLI (make deploy/diff/destroy need it; demo and tests do not)"

# checkov lives in its own venv: its pins (boto3, networkx, ...) would fight the app's.
$(CHECKOV):
	$(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/pip install --quiet "checkov==3.3.30"

# Deploys the real stack to a local moto server, replays dataset/ through it, destroys it.
demo: bootstrap
	$(PIPENV) run python -m demo $(ARGS)

# Read-only replay against the stack deployed in your AWS account: make demo-real-account STACK=<name>
demo-real-account: bootstrap
	$(PIPENV) run python -m demo --real-account $(if $(STACK),--stack $(STACK))

# The offline classifier over the labelled dataset (JSON lines on stdout).
detect-dataset: bootstrap
	$(PIPENV) run python -m handlers.offline.detect_cli dataset

detect: bootstrap
	$(PIPENV) run python -m handlers.offline.detect_cli $(ARGS)

test: bootstrap
	$(PIPENV) run ruff check .
	$(PIPENV) run ruff format --check .
	$(PIPENV) run mypy
	$(PIPENV) run pytest -q

lint: bootstrap
	$(PIPENV) run ruff check .
	$(PIPENV) run ruff format --check .

snapshot: bootstrap
	$(PIPENV) run python scripts/update_snapshots.py

# make plan STACK=security-prod [DEMO=--demo]
plan: bootstrap
	$(PIPENV) run python scripts/terraform_offline.py plan $(STACK) $(DEMO)

validate: bootstrap
	$(PIPENV) run python scripts/terraform_offline.py validate

synth: bootstrap
	$(PIPENV) run python main.py

bench: bootstrap
	$(PIPENV) run python -m benchmarks.synth_speed
	$(PIPENV) run python -m benchmarks.detect_throughput
	$(PIPENV) run python -m benchmarks.handler_cold_start
	$(PIPENV) run python -m benchmarks.exposure_review_throughput
	$(PIPENV) run python -m benchmarks.sink_latency
	$(PIPENV) run python -m benchmarks.detect_sources_throughput

# The pinned cdktf CLI with the offline Terraform config (provider from TF_PROVIDER_MIRROR when set):
#   make deploy STACK=<name> [ARGS=--auto-approve]   make diff STACK=<name>   make destroy STACK=<name>
.PHONY: deploy diff destroy deploy-local stack-required
deploy diff destroy: stack-required bootstrap
	$(PIPENV) run python scripts/cdktf_cli.py $@ $(STACK) $(ARGS)

stack-required:
	@test -n "$(STACK)" || { echo "error: make $(MAKECMDGOALS) needs STACK=<name>, an [[accounts]] name in detector.toml (e.g. STACK=sandbox)" >&2; exit 2; }

# The demo stack deployed by cdktf to a local moto server; prints outputs, stops moto by PID.
#   make deploy-local [ARGS="--diff --destroy"]
deploy-local: bootstrap
	$(PIPENV) run python scripts/deploy_local.py $(ARGS)

clean:
	rm -rf cdktf.out .pytest_cache .hypothesis build
