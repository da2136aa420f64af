"""What is true now: read a bucket's live state and compute its effective exposure.

A CloudTrail record says what somebody asked for. These reads say what holds now:
policy status (AWS's verdict) and the policy itself (our own analysis), the ACL,
Block Public Access (BPA) of the bucket and of the account, object ownership and
tags. AWS's "not set" errors are states, not failures. The reads are independent
and run concurrently.

Effective exposure (most restrictive BPA wins, bucket OR account flag):
- a public policy counts unless ``RestrictPublicBuckets`` is on;
- a public ACL counts unless ``IgnorePublicAcls`` is on or ACLs are disabled
  (ownership ``BucketOwnerEnforced``).
``BlockPublicPolicy``/``BlockPublicAcls`` only refuse new puts; they hide nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from handlers.detection.acl import PERMISSION_ACCESS, public_group
from handlers.detection.policy import PolicyUnreadable, analyse_policy
from handlers.detection.records import as_list

# Defined once with the BPA rule; re-exported for remediation, alerts and the CLI commands.
from handlers.detection.rules.public_access_block import BPA_FLAGS as BPA_FLAGS
from handlers.response import aws_clients

ACLS_DISABLED = "BucketOwnerEnforced"
READ_WORKERS = 7  # one per confirmation read; the benchmark sets 1 to compare sequential reads

# Error codes that mean "this setting does not exist" for the call that returns them.
NOT_SET_CODES: dict[str, frozenset[str]] = {
    "GetBucketPolicyStatus": frozenset({"NoSuchBucketPolicy"}),
    "GetBucketPolicy": frozenset({"NoSuchBucketPolicy"}),
    "GetPublicAccessBlock": frozenset({"NoSuchPublicAccessBlockConfiguration"}),
    "GetBucketOwnershipControls": frozenset({"OwnershipControlsNotFoundError"}),
    "GetBucketTagging": frozenset({"NoSuchTagSet"}),
    "GetAccessPointPolicyStatus": frozenset({"NoSuchAccessPointPolicy"}),
}
GONE_CODES = frozenset({"NoSuchBucket", "NoSuchAccessPoint"})
_ACCESS_POINT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$")
_ACCESS_POINT_ARN = re.compile(r"^arn:aws[a-z-]*:s3:[a-z0-9-]+:(\d{12}):accesspoint/([a-z0-9-]{3,50})$")


class CallFailure(TypedDict):
    """One AWS call that failed, for the alert and the log."""

    call: str  # e.g. s3:GetBucketAcl
    error: str  # AccessDenied, Throttling, NoSuchBucket, Timeout, ...
    message: str


@dataclass
class Read:
    """The outcome of one read: a value, "not set", or a failure."""

    value: Any = None
    not_set: bool = False
    failure: CallFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def describe_error(call: str, exc: Exception) -> CallFailure:
    """A failure record for ``exc`` raised by ``call``: the AWS error code, or Timeout/ConnectionError."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        return CallFailure(call=call, error=code, message=str(error.get("Message") or exc)[:300])
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return CallFailure(call=call, error="Timeout", message=str(exc)[:300])
    if isinstance(exc, BotoCoreError):
        return CallFailure(call=call, error=type(exc).__name__, message=str(exc)[:300])
    return CallFailure(call=call, error=type(exc).__name__, message=str(exc)[:300])


def guarded_read(service: str, operation: str, call: Callable[[], Any], parse: Callable[[Any], Any]) -> Read:
    """Run one read; map "not set" codes to a state and every other error to a failure."""
    label = f"{service}:{operation}"
    try:
        return Read(value=parse(call()))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in NOT_SET_CODES.get(operation, ()):
            return Read(not_set=True)
        return Read(failure=describe_error(label, exc))
    except (BotoCoreError, OSError) as exc:
        return Read(failure=describe_error(label, exc))


def _flags(response: dict[str, Any]) -> dict[str, bool]:
    config = response.get("PublicAccessBlockConfiguration") or {}
    return {flag: bool(config.get(flag, False)) for flag in BPA_FLAGS}


def _ownership(response: dict[str, Any]) -> str | None:
    rules = response.get("OwnershipControls", {}).get("Rules", [])
    return rules[0].get("ObjectOwnership") if rules else None


def _tags(response: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in response.get("TagSet", []) if "Key" in t}


@dataclass
class BucketState:
    """The raw reads for one bucket (and its account)."""

    bucket: str | None
    account_bpa: Read
    policy_status: Read = field(default_factory=Read)
    policy: Read = field(default_factory=Read)
    acl: Read = field(default_factory=Read)
    bucket_bpa: Read = field(default_factory=Read)
    ownership: Read = field(default_factory=Read)
    tags: Read = field(default_factory=Read)

    def reads(self) -> dict[str, Read]:
        names = ("policy_status", "policy", "acl", "bucket_bpa", "ownership", "tags", "account_bpa")
        return {name: getattr(self, name) for name in names}

    @property
    def failures(self) -> list[CallFailure]:
        return [r.failure for r in self.reads().values() if r.failure]

    @property
    def gone(self) -> bool:
        return any(f["error"] in GONE_CODES for f in self.failures)


def account_bpa_read(account: str, region: str | None) -> Read:
    """The account-level BPA flags (s3control)."""
    s3control = aws_clients.client("s3control", region)
    return guarded_read(
        "s3control",
        "GetPublicAccessBlock",
        lambda: s3control.get_public_access_block(AccountId=account),
        _flags,
    )


def read_bucket_state(
    bucket: str,
    account: str,
    region: str | None,
    workers: int | None = None,
    account_bpa: Read | None = None,
) -> BucketState:
    """Read everything that decides the bucket's exposure, concurrently, with ``ExpectedBucketOwner``.

    ``account_bpa``: the account-level flags read once already (the sweep reads them once per
    run instead of once per bucket); ``None`` reads them here.
    """
    s3 = aws_clients.client("s3", region)
    if account_bpa is None:
        aws_clients.client("s3control", region)  # create before the threads race to create it
    owner = {"Bucket": bucket, "ExpectedBucketOwner": account}
    jobs: dict[str, Callable[[], Read]] = {
        "policy_status": lambda: guarded_read(
            "s3",
            "GetBucketPolicyStatus",
            lambda: s3.get_bucket_policy_status(**owner),
            lambda r: bool(r.get("PolicyStatus", {}).get("IsPublic", False)),
        ),
        "policy": lambda: guarded_read(
            "s3", "GetBucketPolicy", lambda: s3.get_bucket_policy(**owner), lambda r: r.get("Policy", "")
        ),
        "acl": lambda: guarded_read(
            "s3", "GetBucketAcl", lambda: s3.get_bucket_acl(**owner), lambda r: r.get("Grants", [])
        ),
        "bucket_bpa": lambda: guarded_read(
            "s3", "GetPublicAccessBlock", lambda: s3.get_public_access_block(**owner), _flags
        ),
        "ownership": lambda: guarded_read(
            "s3", "GetBucketOwnershipControls", lambda: s3.get_bucket_ownership_controls(**owner), _ownership
        ),
        "tags": lambda: guarded_read("s3", "GetBucketTagging", lambda: s3.get_bucket_tagging(**owner), _tags),
        "account_bpa": lambda: account_bpa_read(account, region),
    }
    if account_bpa is not None:
        jobs["account_bpa"] = lambda: account_bpa
    count = READ_WORKERS if workers is None else workers
    if count <= 1:
        results = {name: job() for name, job in jobs.items()}
    else:
        with ThreadPoolExecutor(max_workers=min(count, len(jobs)), thread_name_prefix="confirm") as pool:
            futures = {name: pool.submit(job) for name, job in jobs.items()}
            results = {name: future.result() for name, future in futures.items()}
    return BucketState(bucket=bucket, **results)


class ExposurePath(TypedDict):
    """One way the public could get in: the bucket policy, the bucket ACL or an object ACL."""

    via: str  # policy | bucket-acl | object-acl
    effective: bool  # True: public now; False: held back
    held_back_by: list[str]  # the guards that neutralise it
    access: list[str]
    detail: str


class Exposure(TypedDict):
    """The effective exposure now, and everything that decided it."""

    status: str  # public-now | exposable | closed | unknown | gone | weakened | not-checked
    access: list[str]  # access levels the public has now
    paths: list[ExposurePath]
    reasons: list[str]
    disagreement: str | None  # AWS policy status vs our own analysis
    bucket_bpa: dict[str, bool] | None  # None: not set (all off) or unknown, see bucket_bpa_state
    bucket_bpa_state: str  # set | not-set | unknown | not-read
    account_bpa: dict[str, bool] | None
    account_bpa_state: str
    ownership: str | None
    tags: dict[str, str] | None
    failures: list[CallFailure]
    access_point: NotRequired[dict[str, Any]]  # only for an access point's exposure


def not_checked(reason: str) -> Exposure:
    """An exposure for findings whose state is not read (failed attempts, tampering, foreign accounts)."""
    return Exposure(
        status="not-checked",
        access=[],
        paths=[],
        reasons=[reason],
        disagreement=None,
        bucket_bpa=None,
        bucket_bpa_state="not-read",
        account_bpa=None,
        account_bpa_state="not-read",
        ownership=None,
        tags=None,
        failures=[],
    )


def _state_label(read: Read) -> str:
    if read.failure:
        return "unknown"
    return "not-set" if read.not_set else "set"


def _flag(read: Read, flag: str) -> bool | None:
    """A BPA flag from one read: ``None`` when the read failed (unknown), False when not set."""
    if read.failure:
        return None
    if read.not_set:
        return False
    return bool(read.value.get(flag, False))


def effective_flag(state: BucketState, flag: str) -> bool | None:
    """Bucket OR account: True if either is on, False if both known off, ``None`` if undecidable."""
    values = [_flag(state.bucket_bpa, flag), _flag(state.account_bpa, flag)]
    if True in values:
        return True
    return None if None in values else False


def acl_public_grants(grants: list[dict[str, Any]]) -> tuple[set[str], list[str]]:
    """Access levels and reasons for the grants in an ACL that go to AllUsers/AuthenticatedUsers."""
    access: set[str] = set()
    reasons: list[str] = []
    for grant in as_list(grants):
        group = public_group((grant.get("Grantee") or {}).get("URI")) if isinstance(grant, dict) else None
        if not group:
            continue
        permission = str(grant.get("Permission", "")).upper()
        access.update(PERMISSION_ACCESS.get(permission, ("read", "write", "acl-read", "acl-write")))
        reasons.append(f"bucket ACL grants {permission} to {group}")
    return access, reasons


def assess_bucket(state: BucketState, object_grant: tuple[list[str], list[str]] | None = None) -> Exposure:
    """Combine the reads into an effective exposure.

    ``object_grant`` (access, reasons) describes an object ACL the event made public; it
    is not re-read (the Lambda holds no object permissions) and is assumed still in place.
    """
    reasons: list[str] = []
    paths: list[ExposurePath] = []
    undecided: list[str] = []
    disagreement: str | None = None

    restrict = effective_flag(state, "RestrictPublicBuckets")
    ignore_acls = effective_flag(state, "IgnorePublicAcls")
    ownership = state.ownership.value if state.ownership.ok and not state.ownership.not_set else None
    acls_disabled: bool | None = None if not state.ownership.ok else ownership == ACLS_DISABLED

    # The policy: AWS's status is the authority, our analysis a second opinion; either one saying
    # "public" counts, because blocking a private bucket costs nothing.
    aws_public: bool | None = None
    if state.policy_status.ok:
        aws_public = bool(state.policy_status.value) if not state.policy_status.not_set else False
    ours = None
    own_error = None
    if state.policy.ok and not state.policy.not_set:
        try:
            ours = analyse_policy(state.policy.value)
        except PolicyUnreadable as exc:
            own_error = str(exc)
    own_public: bool | None = (
        False if state.policy.ok and state.policy.not_set else (ours.public if ours else None)
    )
    if aws_public is not None and own_public is not None and aws_public != own_public:
        disagreement = (
            f"GetBucketPolicyStatus reports IsPublic={aws_public} but the project's own analysis of the "
            f"current policy finds it {'public' if own_public else 'not public'}"
            + (f" ({'; '.join(ours.reasons)})" if ours and ours.reasons else "")
            + "; treated as exposed"
        )
    if own_error:
        reasons.append(f"the current bucket policy could not be analysed: {own_error}")
    policy_public = bool(aws_public) or bool(own_public)
    if policy_public:
        access = sorted(ours.access) if ours and ours.public else ["unknown"]
        detail = "; ".join(ours.reasons) if ours and ours.reasons else "GetBucketPolicyStatus: IsPublic=true"
        paths.append(_path("policy", access, detail, {"RestrictPublicBuckets": restrict}))
    elif aws_public is None and own_public is None:
        undecided.append("whether the bucket policy is public (policy reads failed)")

    if state.acl.ok:
        acl_access, acl_reasons = acl_public_grants(state.acl.value)
        if acl_access:
            guards = {"IgnorePublicAcls": ignore_acls, f"ownership {ACLS_DISABLED}": acls_disabled}
            paths.append(_path("bucket-acl", sorted(acl_access), "; ".join(acl_reasons), guards))
    else:
        undecided.append("whether the bucket ACL is public (GetBucketAcl failed)")

    if object_grant is not None:
        guards = {"IgnorePublicAcls": ignore_acls, f"ownership {ACLS_DISABLED}": acls_disabled}
        detail = "; ".join(object_grant[1]) + " (as recorded; the object ACL is not re-read)"
        paths.append(_path("object-acl", sorted(object_grant[0]), detail, guards))

    effective = [p for p in paths if p["effective"]]
    held = [p for p in paths if not p["effective"]]
    undecided_guard = [p for p in held if not p["held_back_by"]]
    public_access = sorted({a for p in effective for a in p["access"]})
    for path in paths:
        if path["effective"]:
            reasons.append(f"public now via {path['via']}: {path['detail']}")
        elif path["held_back_by"]:
            reasons.append(f"{path['via']} is public but held back by {', '.join(path['held_back_by'])}")
        else:
            reasons.append(f"{path['via']} is public; whether Block Public Access holds it back is unknown")

    if state.gone:
        status = "gone"
        reasons.insert(0, "the bucket no longer exists (NoSuchBucket): deleted after the event")
    elif effective:
        status = "public-now"
    elif undecided or undecided_guard:
        status = "unknown"
        reasons.extend(f"could not decide {what}" for what in undecided)
    elif held:
        status = "exposable"
    else:
        status = "closed"
        reasons.append("nothing public: no public policy or ACL in effect")
    return Exposure(
        status=status,
        access=public_access,
        paths=paths,
        reasons=reasons,
        disagreement=disagreement,
        bucket_bpa=state.bucket_bpa.value if state.bucket_bpa.ok and not state.bucket_bpa.not_set else None,
        bucket_bpa_state=_state_label(state.bucket_bpa),
        account_bpa=state.account_bpa.value
        if state.account_bpa.ok and not state.account_bpa.not_set
        else None,
        account_bpa_state=_state_label(state.account_bpa),
        ownership=ownership if state.ownership.ok else None,
        tags=state.tags.value
        if state.tags.ok and not state.tags.not_set
        else ({} if state.tags.ok else None),
        failures=state.failures,
    )


def _path(via: str, access: list[str], detail: str, guards: dict[str, bool | None]) -> ExposurePath:
    """A path is held back when any guard is on; effective when all are known off."""
    on = [name for name, value in guards.items() if value]
    unknown = any(value is None for value in guards.values())
    return ExposurePath(
        via=via,
        effective=not on and not unknown,
        held_back_by=on,
        access=access,
        detail=detail,
    )


def assess_account(account_bpa: Read) -> Exposure:
    """The account-level guard now: weakened (a flag off or not set), closed (all on) or unknown."""
    exposure = not_checked("")
    exposure["reasons"] = []
    exposure["account_bpa_state"] = _state_label(account_bpa)
    exposure["failures"] = [account_bpa.failure] if account_bpa.failure else []
    if account_bpa.failure:
        exposure["status"] = "unknown"
        exposure["reasons"].append("the account's Block Public Access could not be read")
        return exposure
    flags = {flag: False for flag in BPA_FLAGS} if account_bpa.not_set else account_bpa.value
    exposure["account_bpa"] = None if account_bpa.not_set else flags
    off = [flag for flag in BPA_FLAGS if not flags.get(flag)]
    if off:
        exposure["status"] = "weakened"
        where = "not configured" if account_bpa.not_set else f"leaves {', '.join(off)} off"
        exposure["reasons"].append(f"account-level Block Public Access is {where} now")
    else:
        exposure["status"] = "closed"
        exposure["reasons"].append("account-level Block Public Access has all four flags on now")
    return exposure


# ---- access points -----------------------------------------------------------------------------


def access_point_name(value: str | None, account: str) -> str | None:
    """The access point's name from a request's name or ARN, if valid and in ``account``."""
    if not value:
        return None
    arn = _ACCESS_POINT_ARN.match(value)
    if arn:
        return arn.group(2) if arn.group(1) == account else None
    return value if _ACCESS_POINT_NAME.match(value) else None


@dataclass
class AccessPointState:
    """The reads that decide an access point's exposure: AWS's policy verdict and three BPA layers."""

    name: str
    policy_status: Read
    access_point: Read  # GetAccessPoint: its bucket, network origin and its own BPA
    bucket_bpa: Read
    account_bpa: Read

    @property
    def failures(self) -> list[CallFailure]:
        reads = (self.policy_status, self.access_point, self.bucket_bpa, self.account_bpa)
        return [r.failure for r in reads if r.failure and r.failure["error"] != "NotRead"]


def _access_point(response: dict[str, Any]) -> dict[str, Any]:
    return {
        "bucket": response.get("Bucket"),
        "bucketAccount": response.get("BucketAccountId"),
        "networkOrigin": response.get("NetworkOrigin"),
        "bpa": _flags(response) if response.get("PublicAccessBlockConfiguration") is not None else None,
    }


def read_access_point_state(name: str, account: str, region: str | None) -> AccessPointState:
    """Read the access point's policy status, its own BPA, its bucket's BPA and the account's BPA."""
    s3control = aws_clients.client("s3control", region)
    ap_key = {"AccountId": account, "Name": name}
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="confirm-ap") as pool:
        status = pool.submit(
            guarded_read,
            "s3control",
            "GetAccessPointPolicyStatus",
            lambda: s3control.get_access_point_policy_status(**ap_key),
            lambda r: bool(r.get("PolicyStatus", {}).get("IsPublic", False)),
        )
        point = pool.submit(
            guarded_read,
            "s3control",
            "GetAccessPoint",
            lambda: s3control.get_access_point(**ap_key),
            _access_point,
        )
        account_bpa = pool.submit(account_bpa_read, account, region)
        point_read = point.result()
        bucket_bpa = Read(failure=CallFailure(call="s3:GetPublicAccessBlock", error="NotRead", message=""))
        details = point_read.value if point_read.ok else None
        bucket = (details or {}).get("bucket")
        if isinstance(bucket, str) and bucket and (details or {}).get("bucketAccount") in (None, account):
            s3 = aws_clients.client("s3", region)
            bucket_bpa = guarded_read(
                "s3",
                "GetPublicAccessBlock",
                lambda: s3.get_public_access_block(Bucket=bucket, ExpectedBucketOwner=account),
                _flags,
            )
        elif details is not None:
            message = "the access point's bucket is in another account" if bucket else "no bucket named"
            bucket_bpa = Read(
                failure=CallFailure(call="s3:GetPublicAccessBlock", error="NotRead", message=message)
            )
        return AccessPointState(name, status.result(), point_read, bucket_bpa, account_bpa.result())


def assess_access_point(state: AccessPointState) -> Exposure:
    """The access point's effective exposure: AWS's policy verdict, held back by any layer's guard.

    A public access point policy takes effect only if ``RestrictPublicBuckets`` is off on the
    access point, its bucket and the account, and the access point is reachable from the
    internet (network origin ``Internet``; a VPC-only access point is not).
    """
    exposure = not_checked("")
    exposure["reasons"] = []
    exposure["failures"] = state.failures
    exposure["account_bpa_state"] = _state_label(state.account_bpa)
    exposure["account_bpa"] = (
        state.account_bpa.value if state.account_bpa.ok and not state.account_bpa.not_set else None
    )
    exposure["bucket_bpa_state"] = (
        _state_label(state.bucket_bpa)
        if state.bucket_bpa.failure is None or state.bucket_bpa.failure["error"] != "NotRead"
        else "not-read"
    )
    exposure["bucket_bpa"] = (
        state.bucket_bpa.value if state.bucket_bpa.ok and not state.bucket_bpa.not_set else None
    )
    details = state.access_point.value if state.access_point.ok else None
    point_bpa = (details or {}).get("bpa")
    exposure["access_point"] = {
        "name": state.name,
        "bucket": (details or {}).get("bucket"),
        "networkOrigin": (details or {}).get("networkOrigin"),
        "bpa": point_bpa,
        "bpaState": "unknown" if details is None else ("set" if point_bpa is not None else "not-set"),
    }
    if any(f["error"] in GONE_CODES for f in state.failures):
        exposure["status"] = "gone"
        exposure["reasons"].append(f"access point {state.name} no longer exists")
        return exposure
    if state.policy_status.failure:
        exposure["status"] = "unknown"
        exposure["reasons"].append("whether the access point policy is public could not be read")
        return exposure
    if state.policy_status.not_set or not state.policy_status.value:
        exposure["status"] = "closed"
        exposure["reasons"].append(
            "GetAccessPointPolicyStatus reports the access point policy is not public now"
            if not state.policy_status.not_set
            else "the access point has no policy now"
        )
        return exposure
    guards: dict[str, bool | None] = {
        "access point RestrictPublicBuckets": None
        if details is None
        else bool((point_bpa or {}).get("RestrictPublicBuckets")),
        "bucket RestrictPublicBuckets": _flag(state.bucket_bpa, "RestrictPublicBuckets"),
        "account RestrictPublicBuckets": _flag(state.account_bpa, "RestrictPublicBuckets"),
        "network origin VPC": None if details is None else (details.get("networkOrigin") == "VPC"),
    }
    path = _path(
        "access-point-policy", ["unknown"], f"policy of access point {state.name} (IsPublic=true)", guards
    )
    exposure["paths"] = [path]
    if path["effective"]:
        exposure["status"] = "public-now"
        exposure["reasons"].append(f"public now via the policy of access point {state.name}")
    elif path["held_back_by"]:
        exposure["status"] = "exposable"
        exposure["reasons"].append(
            f"the access point policy is public but held back by {', '.join(path['held_back_by'])}"
        )
    else:
        exposure["status"] = "unknown"
        unknown = [name for name, value in guards.items() if value is None]
        exposure["reasons"].append(
            f"the access point policy is public; whether {', '.join(unknown)} holds it back is unknown"
        )
    return exposure
