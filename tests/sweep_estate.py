"""A mixed estate of buckets in moto for the sweep's tests and benchmark, and what each should become.

Every bucket's kind is in its name (``<kind>-<n>``), so a failing assertion names the case.
moto's ``GetBucketPolicyStatus`` is simplistic (docs: /work/shared/notes/aws-semantics.md), so
the public policies here are ``Principal: "*"`` without conditions, which moto and AWS agree on.
moto's ``ListBuckets`` ignores ``ContinuationToken`` and reports no ``BucketRegion``; the seam
answer :func:`paged_listing` pages the real listing the way S3 does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from response_fixtures import ALL_ON, World, public_policy

from handlers.sweep import function as sweep

APPROVAL_TAG = "public-access-approved-until"
EXCEPTION_GLOB = "site-*"
OTHER_REGION = "eu-west-1"

# kind -> (what the sweep should find, whether it alerts when first seen)
KINDS: dict[str, tuple[str, bool]] = {
    "policy": ("public-now", True),  # public by policy
    "acl": ("public-now", True),  # public by ACL
    "held": ("exposable", True),  # public policy held back only by the bucket's BPA
    "heldacl": ("exposable", True),  # public ACL held back only by IgnorePublicAcls
    "site": ("public-now", False),  # allow-listed (EXCEPTION_BUCKETS = ["site-*"])
    "approved": ("public-now", False),  # approval tag valid for 60 more days (within the 90-day horizon)
    "expired": ("public-now", True),  # approval tag expired last year
    "private": ("closed", False),
    "blocked": ("closed", False),  # private with all four BPA flags on
}
# Buckets the sweep closes in enforce mode: every alerting kind whose bucket BPA is not already all on.
CLOSED_BY_ENFORCE = frozenset({"policy", "acl", "heldacl", "expired"})


@dataclass
class Estate:
    """The buckets created, by kind, and where each lives."""

    buckets: dict[str, list[str]] = field(default_factory=dict)
    regions: dict[str, str] = field(default_factory=dict)

    def of(self, *kinds: str) -> set[str]:
        return {name for kind in kinds for name in self.buckets.get(kind, [])}

    @property
    def names(self) -> list[str]:
        return sorted(self.regions)

    def alerting(self) -> set[str]:
        return self.of(*(kind for kind, (_, alerts) in KINDS.items() if alerts))


def build_estate(world: World, counts: dict[str, int], now: datetime | None = None) -> Estate:
    """Create ``counts[kind]`` buckets of each kind; every 10th lives in eu-west-1."""
    now = now or datetime.now(UTC)
    estate = Estate()
    for kind, count in counts.items():
        for index in range(count):
            name = f"{kind}-{index:05d}"
            region = OTHER_REGION if index % 10 == 9 else world.region
            create_bucket(world, name, kind, region, now)
            estate.buckets.setdefault(kind, []).append(name)
            estate.regions[name] = region
    return estate


def create_bucket(world: World, name: str, kind: str, region: str, now: datetime) -> None:
    """One bucket of ``kind`` (see :data:`KINDS`)."""
    s3 = world.client("s3") if region == world.region else _regional(world, region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    if kind in ("policy", "held", "site", "approved", "expired"):
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(public_policy(name)))
    if kind in ("acl", "heldacl"):
        s3.put_bucket_acl(Bucket=name, ACL="public-read")
    if kind in ("held", "blocked"):
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=dict(ALL_ON))
    if kind == "heldacl":
        flags = dict.fromkeys(ALL_ON, False) | {"IgnorePublicAcls": True}
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=flags)
    if kind in ("approved", "expired"):
        until = now + timedelta(days=60) if kind == "approved" else now - timedelta(days=365)
        s3.put_bucket_tagging(
            Bucket=name, Tagging={"TagSet": [{"Key": APPROVAL_TAG, "Value": until.strftime("%Y-%m-%d")}]}
        )


def _regional(world: World, region: str) -> Any:
    from response_fixtures import _test_client

    return _test_client("s3", region)


def paged_listing(world: World, estate: Estate, page_cap: int | None = None) -> Callable[[dict], dict]:
    """A ``ListBuckets`` answer that pages with ``ContinuationToken`` and reports ``BucketRegion``."""

    def answer(params: dict[str, Any]) -> dict[str, Any]:
        query = params.get("query_string") or {}  # the serialised request, not the API parameters
        names = [b["Name"] for b in world.client("s3").list_buckets()["Buckets"]]
        size = min(int(query.get("max-buckets", 10_000)), page_cap or 10_000)
        start = int(query.get("continuation-token") or 0)
        page = names[start : start + size]
        response: dict[str, Any] = {
            "Buckets": [
                {
                    "Name": n,
                    "CreationDate": datetime(2026, 1, 1, tzinfo=UTC),
                    "BucketRegion": estate.regions.get(n, world.region),
                }
                for n in page
            ],
            "Owner": {"ID": "owner"},
        }
        if start + size < len(names):
            response["ContinuationToken"] = str(start + size)
        return response

    return answer


def configure_sweep(world: World, **env: str) -> None:
    """The response settings (``World.configure``) plus the sweep's, and forget cached sweep settings."""
    defaults = {"EXCEPTION_BUCKETS": json.dumps([EXCEPTION_GLOB]), "APPROVAL_TAG": APPROVAL_TAG}
    sweep_env = {k: v for k, v in env.items() if k.startswith("SWEEP_")}
    world.configure(**defaults, **{k: v for k, v in env.items() if not k.startswith("SWEEP_")})
    for name in ("SWEEP_WORK_QUEUE_URL", "SWEEP_FANOUT_THRESHOLD", "SWEEP_THREADS", "SWEEP_BATCH_SIZE",
                 "SWEEP_DIGEST_HOUR"):  # fmt: skip
        world.monkeypatch.delenv(name, raising=False)
    for name, value in sweep_env.items():
        world.monkeypatch.setenv(name, value)
    sweep.reset_settings()


@dataclass
class Published:
    """One alert as the sweep published it (captured at the client seam, before SNS)."""

    subject: str
    payload: dict[str, Any]
    attributes: dict[str, str]


def capture_publishes(world: World) -> list[Published]:
    """Answer the sweep's ``sns:Publish`` at the seam and keep each message (fast for big estates).

    The small tests deliver through moto's topic to the SQS subscription instead (``world.alerts()``).
    """
    captured: list[Published] = []

    def answer(params: dict[str, Any]) -> dict[str, Any]:
        body = params["body"]
        message = json.loads(body["Message"]) if body.get("MessageStructure") == "json" else None
        payload = json.loads(message["sqs"]) if message else {"text": body["Message"]}
        attributes = {
            body[key]: body[key.replace(".Name", ".Value.StringValue")]
            for key in body
            if key.startswith("MessageAttributes.entry.") and key.endswith(".Name")
        }
        captured.append(Published(body.get("Subject", ""), payload, attributes))
        return {"MessageId": f"captured-{len(captured)}"}

    world.answer("sns", "Publish", answer)
    return captured


def clear_ledger(world: World) -> int:
    """Delete every exposure and digest item (the ledger), leaving the event claims."""
    table = world.client("dynamodb")
    from response_fixtures import TABLE

    items = table.scan(TableName=TABLE)["Items"]
    deleted = 0
    for item in items:
        if item["pk"]["S"].startswith(("exposure#", "digest#")):
            table.delete_item(TableName=TABLE, Key={"pk": item["pk"]})
            deleted += 1
    return deleted


def ledger_items(world: World) -> dict[str, dict[str, Any]]:
    """The exposure items, by bucket."""
    from response_fixtures import TABLE

    table = world.client("dynamodb")
    found = {}
    for item in table.scan(TableName=TABLE)["Items"]:
        pk = item["pk"]["S"]
        if pk.startswith("exposure#"):
            found[pk.split("#", 2)[2]] = {k: next(iter(v.values())) for k, v in item.items()}
    return found
