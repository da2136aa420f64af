"""The ``[state]`` table: local (default) or S3 state, validated like the rest of the config.

Each rule has a case here; the synthesized backend blocks are checked directly and through the
extra-config snapshots (tests/configs/*.toml -> tests/snapshots/configs/<config>/<stack>.json,
written by ``scripts/update_snapshots.py``).
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import terraform_offline

from stacks.config import STATE_SCHEMA, ConfigError, StateConfig, load_config, parse_config
from stacks.synth import normalised_json, synth_config

TESTS = Path(__file__).resolve().parent
CONFIG_DIR = TESTS / "configs"
SNAPSHOT_DIR = TESTS / "snapshots" / "configs"
S3_CONFIG = CONFIG_DIR / "s3-state.toml"

ACCOUNT = {"name": "prod", "account_id": "123456789012", "home_region": "eu-west-1"}
S3 = {"backend": "s3", "bucket": "acme-terraform-state", "region": "eu-west-1"}


def with_state(**state: Any) -> dict[str, Any]:
    """A minimal config whose ``[state]`` table is ``state``."""
    return {"accounts": [copy.deepcopy(ACCOUNT)], "state": state}


# ---- parsing ----


def test_no_state_table_keeps_the_local_backend():
    state = parse_config({"accounts": [copy.deepcopy(ACCOUNT)]}).state
    assert state == StateConfig()
    assert (state.backend, state.bucket, state.region) == ("local", None, None)


def test_an_explicit_local_backend_is_the_default():
    assert parse_config(with_state(backend="local")).state == StateConfig()


def test_s3_backend_with_defaults():
    state = parse_config(with_state(**S3)).state
    assert (state.backend, state.bucket, state.region) == ("s3", "acme-terraform-state", "eu-west-1")
    assert state.key("prod") == f"{STATE_SCHEMA['key_prefix'].default}/prod.tfstate"


def test_s3_key_is_prefix_slash_stack_name():
    state = parse_config(with_state(**S3, key_prefix="security/terraform")).state
    assert state.key("prod") == "security/terraform/prod.tfstate"


@pytest.mark.parametrize(
    ("state", "field", "expected"),
    [
        pytest.param(
            {"backend": "s3", "region": "eu-west-1"},
            "bucket",
            'required when state.backend = "s3"',
            id="s3-without-bucket",
        ),
        pytest.param(
            {"backend": "s3", "bucket": "acme-state"},
            "region",
            'required when state.backend = "s3"',
            id="s3-without-region",
        ),
        pytest.param({"backend": "gcs"}, "backend", "one of 'local', 's3'", id="unknown-backend"),
        pytest.param({"backend": True}, "backend", "one of 'local', 's3'", id="backend-not-a-string"),
        pytest.param({**S3, "bucket": "Acme_State"}, "bucket", "S3 bucket name", id="bucket-upper-case"),
        pytest.param({**S3, "bucket": "ab"}, "bucket", "S3 bucket name", id="bucket-too-short"),
        pytest.param({**S3, "bucket": "acme..state"}, "bucket", "S3 bucket name", id="bucket-double-dot"),
        pytest.param({**S3, "region": "eu-west-9"}, "region", "known AWS region", id="unknown-region"),
        pytest.param(
            {**S3, "key_prefix": "/terraform"}, "key_prefix", "no leading", id="prefix-leading-slash"
        ),
        pytest.param(
            {**S3, "key_prefix": "terraform/"}, "key_prefix", "trailing '/'", id="prefix-trailing-slash"
        ),
        pytest.param({**S3, "key_prefix": ".."}, "key_prefix", "'..' part", id="prefix-dot-dot"),
        pytest.param({**S3, "key_prefix": "a/../b"}, "key_prefix", "'..' part", id="prefix-dot-dot-inside"),
        pytest.param({**S3, "key_prefix": "a/.."}, "key_prefix", "'..' part", id="prefix-dot-dot-last"),
        pytest.param({**S3, "key_prefix": "a//b"}, "key_prefix", "empty", id="prefix-empty-part"),
        pytest.param({**S3, "key_prefix": ""}, "key_prefix", "key prefix", id="prefix-empty"),
        pytest.param({**S3, "key_prefix": "state files"}, "key_prefix", "key prefix", id="prefix-space"),
        pytest.param({**S3, "key_prefix": 7}, "key_prefix", "key prefix", id="prefix-not-a-string"),
        pytest.param(
            {"bucket": "acme-state"},
            "bucket",
            'only used when state.backend = "s3"',
            id="bucket-with-local-backend",
        ),
        pytest.param(
            {"region": "eu-west-1"},
            "region",
            'only used when state.backend = "s3"',
            id="region-with-local-backend",
        ),
        pytest.param(
            {"key_prefix": "tf"},
            "key_prefix",
            'only used when state.backend = "s3"',
            id="prefix-with-local-backend",
        ),
        pytest.param({**S3, "dynamodb_table": "locks"}, "dynamodb_table", "unknown key", id="unknown-key"),
    ],
)
def test_bad_state_values_name_the_field(state, field, expected):
    with pytest.raises(ConfigError) as error:
        parse_config(with_state(**state), source="detector.toml")
    message = str(error.value)
    assert message.startswith(f"detector.toml: state.{field}: "), message
    assert expected in message, message


def test_prefix_accepts_dots_inside_names():
    # '..' is refused as a path part, not as two dots inside a name.
    assert parse_config(with_state(**S3, key_prefix="team..x/v1.2")).state.key_prefix == "team..x/v1.2"


def test_state_must_be_a_table():
    with pytest.raises(ConfigError, match=r"^detector\.toml: state: expected a table \(\[state\]\)"):
        parse_config({"accounts": [copy.deepcopy(ACCOUNT)], "state": "s3"}, source="detector.toml")


def test_unknown_top_level_key_names_state_among_the_allowed():
    with pytest.raises(ConfigError, match=r"statee: unknown key; expected only 'version', \[state\]"):
        parse_config({"accounts": [copy.deepcopy(ACCOUNT)], "statee": {}})


def test_the_example_s3_config_loads():
    config = load_config(S3_CONFIG)
    assert config.state.backend == "s3"
    assert config.state.key("state-s3") == "security/s3-detector/state-s3.tfstate"


# ---- synthesized backend blocks ----


@pytest.fixture(scope="module")
def s3_stacks(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return synth_config(load_config(S3_CONFIG), tmp_path_factory.mktemp("s3-state"))


def test_s3_backend_block(s3_stacks):
    assert s3_stacks["state-s3"]["terraform"]["backend"] == {
        "s3": {
            "bucket": "example-terraform-state",
            "key": "security/s3-detector/state-s3.tfstate",
            "region": "eu-west-1",
            "encrypt": True,
            "use_lockfile": True,
        }
    }


def test_local_backend_is_unchanged(tmp_path):
    stacks = synth_config(parse_config({"accounts": [copy.deepcopy(ACCOUNT)]}), tmp_path)
    assert stacks["prod"]["terraform"]["backend"] == {"local": {"path": "../../../terraform.prod.tfstate"}}


def test_every_stack_of_a_config_gets_its_own_key(tmp_path):
    second = {**ACCOUNT, "name": "staging", "account_id": "210987654321"}
    data = {"accounts": [copy.deepcopy(ACCOUNT), second], "state": dict(S3)}
    stacks = synth_config(parse_config(data), tmp_path)
    keys = {name: stack["terraform"]["backend"]["s3"]["key"] for name, stack in stacks.items()}
    prefix = STATE_SCHEMA["key_prefix"].default
    assert keys == {"prod": f"{prefix}/prod.tfstate", "staging": f"{prefix}/staging.tfstate"}


def extra_snapshot_cases() -> list[tuple[Path, str]]:
    return [
        (config, snapshot.stem)
        for config in sorted(CONFIG_DIR.glob("*.toml"))
        for snapshot in sorted((SNAPSHOT_DIR / config.stem).glob("*.json"))
    ]


def test_every_extra_config_has_snapshots(tmp_path):
    for config in sorted(CONFIG_DIR.glob("*.toml")):
        names = sorted(account.name for account in load_config(config).accounts)
        stored = sorted(p.stem for p in (SNAPSHOT_DIR / config.stem).glob("*.json"))
        assert stored == names, f"{config.name}: run `make snapshot`"


@pytest.mark.parametrize(("config", "name"), extra_snapshot_cases(), ids=lambda v: getattr(v, "stem", v))
def test_extra_config_matches_its_snapshot(config, name, tmp_path):
    actual = normalised_json(synth_config(load_config(config), tmp_path, only=name)[name])
    expected = (SNAPSHOT_DIR / config.stem / f"{name}.json").read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True), actual.splitlines(keepends=True), "snapshot", "synth"
            )
        )
        pytest.fail(f"{config.name}/{name} differs from its snapshot (run `make snapshot`):\n{diff[:6000]}")


def test_extra_snapshots_carry_no_machine_paths():
    for path in SNAPSHOT_DIR.rglob("*.json"):
        text = path.read_text()
        assert str(TESTS.parent) not in text, path
        assert "/tmp/" not in text, path
        json.loads(text)


# ---- the s3 backend against moto: state object at the configured key, S3-native lock ----

NO_TERRAFORM = shutil.which("terraform") is None
NO_MIRROR = not os.environ.get(terraform_offline.MIRROR_ENV)


@pytest.mark.skipif(NO_TERRAFORM, reason="terraform CLI not on PATH")
@pytest.mark.skipif(
    NO_MIRROR,
    reason=f"{terraform_offline.MIRROR_ENV} is unset: set it to a filesystem mirror of hashicorp/aws",
)
def test_s3_backend_keeps_state_and_lock_in_the_bucket(tmp_path):
    import boto3

    from demo.emulator import MotoServer
    from stacks.providers import ProviderOptions

    config = load_config(S3_CONFIG)
    state, account = config.state, config.accounts[0]
    server = MotoServer(account.account_id, tmp_path / "moto.log")
    server.start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=server.url,
            region_name=state.region,
            aws_access_key_id="t",
            aws_secret_access_key="t",
        )
        s3.create_bucket(Bucket=state.bucket, CreateBucketConfiguration={"LocationConstraint": state.region})
        synth_config(config, tmp_path / "out", ProviderOptions(endpoint_url=server.url))
        stack_dir = tmp_path / "out" / "stacks" / account.name
        # Only where the backend connects to is overridden; bucket, key, region, encrypt and
        # use_lockfile come from the synthesized stack.
        (tmp_path / "emulator.s3.tfbackend").write_text(
            f'endpoints = {{ s3 = "{server.url}", sts = "{server.url}" }}\n'
            "use_path_style = true\nskip_credentials_validation = true\nskip_requesting_account_id = true\n"
            'skip_metadata_api_check = true\naccess_key = "test"\nsecret_key = "test"\n'
        )
        env = terraform_offline.terraform_env(workdir=tmp_path / "cli")

        def terraform(*args: str) -> subprocess.CompletedProcess[str]:
            return terraform_offline.run_terraform([*args, "-input=false", "-no-color"], stack_dir, env)

        init = terraform("init", f"-backend-config={tmp_path / 'emulator.s3.tfbackend'}")
        assert init.returncode == 0, init.stdout + init.stderr
        topic = next(iter(json.loads((stack_dir / "cdk.tf.json").read_text())["resource"]["aws_sns_topic"]))
        applied = terraform("apply", "-auto-approve", f"-target=aws_sns_topic.{topic}")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        objects = [o["Key"] for o in s3.list_objects_v2(Bucket=state.bucket).get("Contents", [])]
        assert objects == [state.key(account.name)]  # the lock is released after the apply
        stored = json.loads(s3.get_object(Bucket=state.bucket, Key=state.key(account.name))["Body"].read())
        assert any(r["type"] == "aws_sns_topic" for r in stored["resources"])

        # Someone else holds the lock: Terraform refuses to plan.
        s3.put_object(Bucket=state.bucket, Key=f"{state.key(account.name)}.tflock", Body=b'{"ID": "other"}')
        locked = terraform("plan", "-lock-timeout=0s", "-refresh=false")
        assert locked.returncode == 1
        assert "Error acquiring the state lock" in locked.stdout + locked.stderr
    finally:
        server.stop()
