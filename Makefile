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

# Offline Terraform: when TF_PROVIDER_MIRROR is not given, use a hashicorp/aws provider mirror
# found on this machine, if any (its root holds registry.terraform.io/). Empty means download.
ifeq ($(origin TF_PROVIDER_MIRROR),undefined)
TF_PROVIDER_MIRROR := $(shell find / \( -path /proc -o -path /sys \) -prune -o -type f \
	-name 'terraform-provider-aws_*' -path '*/registry.terraform.io/*' -print -quit 2>/dev/null \
	| sed 's|/registry.terraform.io/.*||')
endif
export TF_PROVIDER_MIRROR

.PHONY: bootstrap demo demo-real-account detect-dataset test detect lint snapshot plan validate synth bench clean

bootstrap: $(VENV)/.synced $(CHECKOV)

$(VENV)/.synced: Pipfile.lock
	@$(PYTHON) -m pipenv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet pipenv
	$(PIPENV) sync --dev
	@touch $@

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
	$(PIPENV) run python -m handlers.detect_cli dataset

detect: bootstrap
	$(PIPENV) run python -m handlers.detect_cli $(ARGS)

test: bootstrap
	$(PIPENV) run ruff check .
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

clean:
	rm -rf cdktf.out .pytest_cache .hypothesis build
