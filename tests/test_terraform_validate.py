"""`terraform validate` on every synthesized stack, offline through the provider mirror.

Needs the terraform CLI and TF_PROVIDER_MIRROR naming a filesystem mirror of hashicorp/aws
(see scripts/terraform_offline.py); without them the test is skipped, saying which is missing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import terraform_offline

from stacks.config import load_config, parse_config
from stacks.providers import ProviderOptions
from stacks.synth import synth_config

pytestmark = [
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform CLI not on PATH"),
    pytest.mark.skipif(
        not os.environ.get(terraform_offline.MIRROR_ENV),
        reason=f"{terraform_offline.MIRROR_ENV} is unset: set it to a filesystem mirror of hashicorp/aws",
    ),
]

VARIANT = {
    "name": "enforcer",
    "account_id": "333333333333",
    "home_region": "us-west-2",
    "watch_regions": ["us-east-1"],
    "remediation": {"mode": "enforce", "allow_account_level": True},
    "trail": {"kms_encryption": False, "object_write_data_events": True},
}


@pytest.fixture(scope="module")
def stack_dirs(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("validate")
    synth_config(load_config(), out / "repo")
    synth_config(parse_config({"accounts": [VARIANT]}), out / "variant")
    synth_config(
        load_config(), out / "emulator", ProviderOptions(endpoint_url="http://127.0.0.1:4566"), only="sandbox"
    )
    return [
        *sorted((out / "repo" / "stacks").iterdir()),
        out / "variant" / "stacks" / "enforcer",
        out / "emulator" / "stacks" / "sandbox",
    ]


@pytest.fixture(scope="module")
def terraform_env(tmp_path_factory) -> dict[str, str]:
    return terraform_offline.terraform_env(workdir=tmp_path_factory.mktemp("tfcli"))


def test_every_stack_validates(stack_dirs, terraform_env):
    failures = {}
    for stack_dir in stack_dirs:
        ok, output = terraform_offline.init_and_validate(stack_dir, terraform_env)
        if not ok:
            failures[f"{stack_dir.parent.parent.name}/{stack_dir.name}"] = output
        # The provider is linked from the mirror, never copied into the stack directory.
        size = sum(
            f.stat().st_size
            for f in (stack_dir / ".terraform").rglob("*")
            if f.is_file() and not f.is_symlink()
        )
        assert size < 5_000_000, f"{stack_dir}: .terraform holds {size} bytes; the provider was copied"
    assert not failures, failures


def test_cli_config_points_at_the_mirror_only(tmp_path):
    mirror = terraform_offline.mirror_root()
    config = terraform_offline.write_cli_config(mirror, tmp_path).read_text()
    assert f'path    = "{mirror}"' in config
    assert 'exclude = ["registry.terraform.io/hashicorp/aws"]' in config
    entry = next((tmp_path / "plugin-cache" / terraform_offline.PROVIDER).glob("*/*"))
    assert entry.is_symlink() and entry.resolve().is_relative_to(mirror)


def test_unset_mirror_changes_nothing():
    env = terraform_offline.terraform_env({"PATH": "/usr/bin", "TF_CLI_CONFIG_FILE": "/elsewhere"})
    env_without = terraform_offline.terraform_env({"PATH": "/usr/bin"})
    assert env["TF_CLI_CONFIG_FILE"] == "/elsewhere"
    assert "TF_CLI_CONFIG_FILE" not in env_without


def test_a_bad_mirror_is_reported(tmp_path):
    with pytest.raises(
        terraform_offline.OfflineSetupError, match=r"no registry\.terraform\.io/hashicorp/aws"
    ):
        terraform_offline.mirror_root({terraform_offline.MIRROR_ENV: str(tmp_path)})
