"""Security scan of every synthesized stack with checkov (offline): nothing fails unjustified.

checkov's terraform_json runner ignores inline skip comments, so an accepted finding is
justified in the resource's own ``//`` block (``checkov_skips``, written by
``stacks/scan_exceptions.py``); this test enforces it both ways: every failed check must be
justified on that resource, and every justification must still be needed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stacks.config import load_config, parse_config
from stacks.synth import synth_config

CHECKOV = Path(__file__).resolve().parents[1] / ".tools" / "checkov" / "bin" / "checkov"

CHECKOV_ARGS = ("--framework", "terraform_json", "--skip-download", "--quiet", "--compact", "-o", "json")

pytestmark = pytest.mark.skipif(
    not CHECKOV.exists(), reason=f"checkov not installed at {CHECKOV} (make bootstrap)"
)

VARIANT = {
    "name": "enforcer",
    "account_id": "333333333333",
    "home_region": "us-west-2",
    "remediation": {"mode": "enforce", "allow_account_level": True},
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> dict[str, tuple[dict, list[dict]]]:
    """Stack name -> (its synthesized JSON, checkov's failed checks)."""
    out = tmp_path_factory.mktemp("checkov")
    stacks = synth_config(load_config(), out / "repo")
    stacks |= synth_config(parse_config({"accounts": [VARIANT]}), out / "variant")
    results = {}
    for name, stack in stacks.items():
        stack_file = next(out.glob(f"*/stacks/{name}/cdk.tf.json"))
        run = subprocess.run(
            [str(CHECKOV), "-f", str(stack_file), *CHECKOV_ARGS],
            capture_output=True,
            text=True,
            check=False,
        )
        report = json.loads(run.stdout)
        reports = report if isinstance(report, list) else [report]
        assert all(r["summary"]["parsing_errors"] == 0 for r in reports), run.stdout[:2000]
        assert sum(r["summary"]["passed"] for r in reports) > 20, "checkov ran almost no checks"
        results[name] = (stack, [f for r in reports for f in r["results"]["failed_checks"]])
    return results


def justified_skips(stack: dict) -> dict[str, set[str]]:
    """Logical resource id -> check ids its ``//`` block justifies."""
    skips: dict[str, set[str]] = {}
    for resources in stack.get("resource", {}).values():
        for logical_id, body in resources.items():
            for entry in body.get("//", {}).get("checkov_skips", []):
                check_id, _, reason = entry.partition(": ")
                assert len(reason) > 20, f"{logical_id}: {check_id} needs a real justification"
                skips.setdefault(logical_id, set()).add(check_id)
    return skips


def test_no_unjustified_findings(scanned):
    for name, (stack, failed) in scanned.items():
        skips = justified_skips(stack)
        unjustified = [
            f"{f['check_id']} on {f['resource']}: {f['check_name']}"
            for f in failed
            if f["check_id"] not in skips.get(f["resource"].split(".")[-1], set())
        ]
        assert not unjustified, f"{name}: " + "; ".join(unjustified)


def test_every_justification_is_still_needed(scanned):
    for name, (stack, failed) in scanned.items():
        failing = {(f["resource"].split(".")[-1], f["check_id"]) for f in failed}
        stale = [
            (rid, cid)
            for rid, ids in justified_skips(stack).items()
            for cid in ids
            if (rid, cid) not in failing
        ]
        assert not stale, f"{name}: justifications no longer needed: {stale}"
