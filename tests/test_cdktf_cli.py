"""The pinned cdktf CLI (package.json), its make targets, and re-plans after an apply to moto.

Fast tests need neither npm nor Terraform. Two slow ones deploy the demo stack to a moto server:
- ``test_plan_after_apply_*``: plain Terraform (no npm: runs in CI), then
  ``terraform plan -detailed-exitcode``; only the known moto gaps may show.
- ``test_cdktf_deploy_diff_destroy``: ``scripts/deploy_local.py``'s flow through the cdktf CLI
  (deploy, diff, destroy); skipped unless ``node_modules/.bin/cdktf`` is installed.
Both need terraform on PATH and TF_PROVIDER_MIRROR (``make test`` finds the mirror); without
them they are skipped, saying what is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import cdktf_cli
import deploy_local
import terraform_offline

from stacks.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
PINNED = "0.21.0"
NO_TERRAFORM = shutil.which("terraform") is None
NO_MIRROR = not os.environ.get(terraform_offline.MIRROR_ENV)
NO_MIRROR_REASON = (
    f"{terraform_offline.MIRROR_ENV} is unset: set it to a filesystem mirror of hashicorp/aws "
    "(make test finds one)"
)


# ---- the pin ----


def test_package_json_pins_the_cli_exactly_as_the_lock_does():
    package = json.loads((REPO_ROOT / "package.json").read_text())
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    assert package["devDependencies"] == {"cdktf-cli": PINNED}  # exact: no ^ or ~
    assert "dependencies" not in package
    assert lock["packages"][""]["devDependencies"] == {"cdktf-cli": PINNED}
    installed = lock["packages"]["node_modules/cdktf-cli"]
    assert installed["version"] == PINNED
    assert installed["integrity"].startswith("sha512-")
    assert cdktf_cli.PINNED_VERSION == PINNED


def test_the_cli_matches_the_python_library():
    pipfile = (REPO_ROOT / "Pipfile").read_text()
    assert f'cdktf = "=={PINNED}"' in pipfile


def test_node_modules_is_gitignored():
    lines = (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert "node_modules/" in lines


# ---- make targets ----


def make(*args: str) -> subprocess.CompletedProcess[str]:
    # An explicit (empty) mirror skips the Makefile's search of the disk.
    env = {**os.environ, terraform_offline.MIRROR_ENV: os.environ.get(terraform_offline.MIRROR_ENV, "")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="make not on PATH")
@pytest.mark.parametrize("verb", ["deploy", "diff", "destroy"])
def test_make_targets_run_the_wrapper(verb):
    done = make("-n", verb, "STACK=sandbox", "ARGS=--no-color")
    assert done.returncode == 0, done.stderr
    assert f"scripts/cdktf_cli.py {verb} sandbox --no-color" in done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make not on PATH")
@pytest.mark.parametrize("verb", ["deploy", "diff", "destroy"])
def test_make_targets_refuse_a_missing_stack(verb):
    for args in ([verb], [verb, "STACK="]):
        done = make(*args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"make {verb} needs STACK=<name>" in done.stderr
        assert "pipenv" not in done.stdout + done.stderr  # refused before bootstrap runs


@pytest.mark.skipif(shutil.which("make") is None, reason="make not on PATH")
def test_make_deploy_local_runs_the_script():
    done = make("-n", "deploy-local", "ARGS=--diff")
    assert done.returncode == 0, done.stderr
    assert "scripts/deploy_local.py --diff" in done.stdout


# ---- the wrapper ----


def test_a_missing_cli_says_how_to_install_it(tmp_path):
    with pytest.raises(cdktf_cli.CdktfCliError, match=r"not found: run `make bootstrap` with npm"):
        cdktf_cli.cdktf_binary(tmp_path / "cdktf")


def test_the_wrapper_refuses_a_missing_stack_and_an_unknown_verb(capsys):
    assert cdktf_cli.main(["deploy"]) == 2
    assert "no stack given: make deploy STACK=<name>" in capsys.readouterr().err
    assert cdktf_cli.main(["deploy", "--auto-approve"]) == 2
    assert cdktf_cli.main(["apply", "sandbox"]) == 2
    assert "unknown command 'apply'" in capsys.readouterr().err


def test_the_wrapper_reports_a_missing_cli(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cdktf_cli, "CDKTF_BIN", tmp_path / "node_modules" / ".bin" / "cdktf")
    monkeypatch.setattr(cdktf_cli.cdktf_binary, "__defaults__", (cdktf_cli.CDKTF_BIN,))
    assert cdktf_cli.main(["diff", "sandbox"]) == 2
    assert "make bootstrap" in capsys.readouterr().err


def fake_mirror(root: Path) -> Path:
    (root / terraform_offline.PROVIDER / "5.100.0" / "linux_amd64").mkdir(parents=True)
    return root


def test_the_environment_uses_the_offline_terraform_config(tmp_path):
    mirror = fake_mirror(tmp_path / "mirror")
    base = {"PATH": "/usr/bin", terraform_offline.MIRROR_ENV: str(mirror), "TF_PLUGIN_CACHE_DIR": "/x"}
    env = cdktf_cli.cdktf_env(base, workdir=tmp_path / "cli")
    config = Path(env["TF_CLI_CONFIG_FILE"])
    assert config.is_relative_to(tmp_path / "cli")
    assert f'path    = "{mirror}"' in config.read_text()
    # cdktf would otherwise point TF_PLUGIN_CACHE_DIR at ~/.terraform.d and copy the provider.
    assert env["CDKTF_DISABLE_PLUGIN_CACHE_ENV"] == "1"
    assert env["CHECKPOINT_DISABLE"] == env["DISABLE_VERSION_CHECK"] == "1"
    assert cdktf_cli.offline_flags(env) == ["--skip-provider-lock"]
    assert cdktf_cli.offline_flags(env, ["--skip-provider-lock"]) == []


def test_without_a_mirror_cdktf_installs_providers_as_usual(tmp_path):
    env = cdktf_cli.cdktf_env({"PATH": "/usr/bin"}, workdir=tmp_path)
    assert "TF_CLI_CONFIG_FILE" not in env
    assert cdktf_cli.offline_flags(env) == []


def test_a_bad_mirror_is_a_wrapper_error(tmp_path):
    with pytest.raises(cdktf_cli.CdktfCliError, match=r"no registry\.terraform\.io/hashicorp/aws"):
        cdktf_cli.cdktf_env({terraform_offline.MIRROR_ENV: str(tmp_path)}, workdir=tmp_path)


# ---- drift classification ----


def update(address: str, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    kind, name = address.split(".")
    change = {"actions": ["update"], "before": before, "after": after, "after_unknown": {}}
    return {"address": address, "type": kind, "name": name, "change": change}


def test_drift_keeps_only_what_real_aws_would_also_show():
    spaced = '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq", "maxReceiveCount": 5}'
    compact = '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:dlq","maxReceiveCount":5}'
    plan = {
        "resource_changes": [
            update("aws_lambda_function.f", {"dead_letter_config": [], "memory_size": 128},
                   {"dead_letter_config": [{"target_arn": "arn"}], "memory_size": 128}),
            update("aws_sqs_queue.same", {"redrive_policy": spaced}, {"redrive_policy": compact}),
            update("aws_sqs_queue.other", {"redrive_policy": spaced},
                   {"redrive_policy": compact.replace(":5", ":6")}),
            update("aws_lambda_function.g", {"timeout": 3}, {"timeout": 900}),
            {"address": "aws_sns_topic.t", "type": "aws_sns_topic", "name": "t",
             "change": {"actions": ["delete", "create"], "before": {}, "after": {}}},
            {"address": "aws_kms_key.k", "type": "aws_kms_key", "name": "k",
             "change": {"actions": ["no-op"]}},
        ]
    }  # fmt: skip
    drift = deploy_local.plan_drift(plan)
    assert set(drift) == {
        "aws_lambda_function.f",
        "aws_sqs_queue.same",
        "aws_sqs_queue.other",
        "aws_lambda_function.g",
        "aws_sns_topic.t",
    }
    assert set(drift["aws_lambda_function.f"]) == {"dead_letter_config"}
    assert deploy_local.unexpected_drift(drift) == {
        "aws_sqs_queue.other": {"redrive_policy"},  # a real change, not whitespace
        "aws_lambda_function.g": {"timeout"},
        "aws_sns_topic.t": {"<delete/create>"},
    }


def test_the_known_moto_gaps_are_these():
    # Listed explicitly: a new entry must be a moto limitation, shown by a re-plan against moto.
    assert set(deploy_local.KNOWN_MOTO_GAPS) == {
        ("aws_lambda_function", "dead_letter_config"),
        ("aws_lambda_function", "logging_config"),
        ("aws_sqs_queue", "redrive_policy"),
    }
    assert set(deploy_local.WHITESPACE_ONLY_GAPS) == {("aws_sqs_queue", "redrive_policy")}


# ---- against moto: plain Terraform (no npm) ----


@pytest.fixture(scope="module")
def plan_after_apply(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The demo stack applied to moto with plain Terraform, then planned again: the plan as JSON."""
    from demo import terraform_run
    from demo.emulator import MotoServer

    workdir = tmp_path_factory.mktemp("plan-after-apply")
    account = load_config(deploy_local.DEMO_CONFIG).accounts[0]
    server = MotoServer(account.account_id, workdir / "moto.log")
    server.start()
    try:
        env = terraform_run.terraform_env(workdir / "terraform-cli")
        stack_dir = terraform_run.synth(deploy_local.DEMO_CONFIG, server.url, workdir / "cdktf.out")
        stack_dir = stack_dir / account.name
        terraform_run.init(stack_dir, env, workdir / "init.log")
        terraform_run.apply(stack_dir, env, workdir / "apply.log", lambda _: None)
        plan = terraform_offline.run_terraform(
            ["plan", "-input=false", "-no-color", "-lock=false", "-detailed-exitcode", "-out=replan.tfplan"],
            stack_dir,
            env,
        )
        assert plan.returncode in (0, 2), plan.stdout + plan.stderr  # 1: error; 2: changes
        shown = terraform_offline.run_terraform(["show", "-json", "replan.tfplan"], stack_dir, env)
        assert shown.returncode == 0, shown.stderr
        yield json.loads(shown.stdout)
    finally:
        server.stop()


@pytest.mark.skipif(NO_TERRAFORM, reason="terraform CLI not on PATH")
@pytest.mark.skipif(NO_MIRROR, reason=NO_MIRROR_REASON)
def test_plan_after_apply_drifts_only_in_known_moto_gaps(plan_after_apply):
    drift = deploy_local.plan_drift(plan_after_apply)
    assert deploy_local.unexpected_drift(drift) == {}, drift


@pytest.mark.skipif(NO_TERRAFORM, reason="terraform CLI not on PATH")
@pytest.mark.skipif(NO_MIRROR, reason=NO_MIRROR_REASON)
def test_plan_after_apply_shows_each_known_gap_for_what_it_is(plan_after_apply):
    # The gaps are real against moto (so the list is not stale), and in place, never a replacement.
    drift = deploy_local.plan_drift(plan_after_apply)
    seen = {(address.split(".")[0], name) for address, changes in drift.items() for name in changes}
    assert seen == set(deploy_local.KNOWN_MOTO_GAPS), drift
    for change in plan_after_apply["resource_changes"]:
        assert change["change"]["actions"] in (["no-op"], ["update"], ["read"]), change["address"]


# ---- against moto: the cdktf CLI, as make deploy-local runs it ----


@pytest.mark.skipif(
    not cdktf_cli.CDKTF_BIN.is_file(),
    reason="node_modules/.bin/cdktf is not installed: run `make bootstrap` with npm on PATH",
)
@pytest.mark.skipif(NO_TERRAFORM, reason="terraform CLI not on PATH (cdktf runs it)")
@pytest.mark.skipif(NO_MIRROR, reason=NO_MIRROR_REASON)
def test_cdktf_deploy_diff_destroy():
    messages: list[str] = []
    with deploy_local.LocalCdktf(say=messages.append, stream=False) as local:
        deployed, outputs = local.deploy()
        assert {"alert_topic_arn", "response_function_name", "dead_letter_queue_url"} <= set(outputs)
        assert outputs["response_function_name"] == "demo-s3-exposure-response"
        assert local.resource_count() >= 60, deployed.output[-3000:]

        diffed, drift = local.diff()
        assert deploy_local.unexpected_drift(drift) == {}, drift
        assert "to add" not in diffed.output or "Plan: 0 to add" in diffed.output

        local.destroy()
        assert local.resource_count() == 0
        workdir, pid = local.workdir, local.server.pid
    assert not workdir.exists()
    assert f"moto: stopped (pid {pid})" in messages
