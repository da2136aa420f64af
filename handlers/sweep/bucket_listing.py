"""Every bucket of the account, for the sweep, with whichever botocore the Lambda runtime ships.

The functions run on the python3.12 runtime's own boto3/botocore (the package carries no SDK),
which is older than ours and differs by runtime version and region. ``ListBuckets`` pagination
arrived in botocore's model in two steps: ``MaxBuckets``/``ContinuationToken`` by 1.35.0 (not in
1.34.150), the response's ``Buckets[].BucketRegion`` (and the ``Prefix``/``BucketRegion``
request filters, never sent here) between 1.35.40 and 1.35.60. Before 1.35.0 ``ListBuckets``
has no input shape, so botocore skips validation and its serialiser silently drops
``MaxBuckets``/``ContinuationToken``: the call goes out unpaged, and the parser drops the
response members it does not model. So the listing asks the loaded model instead of assuming:

- **paged** (the model has ``MaxBuckets`` and ``ContinuationToken``): pages of
  :data:`LIST_PAGE_SIZE`, each bucket with the ``BucketRegion`` S3 reports (``None`` on a
  botocore between 1.35.0 and the region release);
- **unpaged** (older model): one ``ListBuckets`` call, logged as such. S3 answers it with every
  bucket only for accounts at the default general purpose bucket quota (10,000); with a raised
  quota S3 rejects unpaginated calls, the listing raises and the sweep's missed-run alarm fires
  (loud, not a silent gap). No region is known (``BucketRef.region`` is ``None``): the sweep
  reads each such bucket through a home-region client, and botocore's S3 region redirector
  follows S3's ``301 PermanentRedirect`` (or a ``400`` naming the region) for the
  ``GetBucket*``/``PutPublicAccessBlock`` calls: it re-signs for the region in
  ``x-amz-bucket-region`` and resends once, then sends that bucket's later calls on that client
  straight to its region (one extra round trip per bucket per warm container).

``tests/test_lambda_runtime_sdk.py`` proves both shapes, the redirect and the malformed-page
handling under the runtime's botocore. Malformed answers never crash the listing: bucket entries
that are not objects or have no usable ``Name`` are skipped and counted
(``BucketListing.skipped``), and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from handlers.response import aws_clients
from handlers.response.decision_log import log_decision_at

log = logging.getLogger("handlers.sweep.bucket_listing")

LIST_PAGE_SIZE = 1000  # buckets per ListBuckets page (the API allows 1 to 10,000)
PAGING_MEMBERS = frozenset({"MaxBuckets", "ContinuationToken"})
UNPAGED_LIMIT = 10_000  # S3 serves unpaginated ListBuckets only to accounts at this default quota


class ListingFailed(RuntimeError):
    """S3 answered in a way the listing cannot continue from (a continuation token that repeats)."""


@dataclass(frozen=True)
class BucketRef:
    """A bucket and the region it lives in (``None``: unknown, use the home region)."""

    name: str
    region: str | None


@dataclass
class BucketListing:
    """The buckets listed, and how: paged or not, pages read, entries skipped as malformed."""

    refs: list[BucketRef] = field(default_factory=list)
    paged: bool = False
    pages: int = 0
    skipped: int = 0  # entries that were not an object with a non-empty string Name
    duplicates: int = 0  # names listed twice (kept once)
    malformed_pages: int = 0  # pages that were not an object, or whose Buckets was not a list


def supports_paging(s3: Any) -> bool:
    """Whether this client's botocore model has ``ListBuckets``' ``MaxBuckets``/``ContinuationToken``.

    Before botocore 1.35.0 ``ListBuckets`` has no input shape at all (``input_shape`` is ``None``).
    """
    try:
        shape = s3.meta.service_model.operation_model("ListBuckets").input_shape
    except Exception:  # a model without ListBuckets: let the call itself raise
        return False
    members = getattr(shape, "members", None) or {}
    return PAGING_MEMBERS.issubset(members)


def list_buckets(region: str | None) -> list[BucketRef]:
    """Every bucket of the account, page by page when the SDK can, with its region when S3 reports it."""
    return list_bucket_refs(region).refs


def list_bucket_refs(region: str | None) -> BucketListing:
    """:func:`list_buckets` with how the listing went (for logs and metrics)."""
    s3 = aws_clients.client("s3", region)
    listing = BucketListing(paged=supports_paging(s3))
    seen: set[str] = set()
    if not listing.paged:
        page = s3.list_buckets()
        _take(page, listing, seen)
        if isinstance(page, Mapping) and page.get("ContinuationToken"):
            log_decision_at(log, logging.ERROR, "listing-truncated", reason="token without paging params")
        _log(listing)
        return listing
    tokens: set[str] = set()
    token: str | None = None
    while True:
        params: dict[str, Any] = {"MaxBuckets": LIST_PAGE_SIZE}
        if token:
            params["ContinuationToken"] = token
        page = s3.list_buckets(**params)  # sdk-guarded: only when supports_paging(s3)
        _take(page, listing, seen)
        next_token = page.get("ContinuationToken") if isinstance(page, Mapping) else None
        if not isinstance(next_token, str) or not next_token:
            _log(listing)
            return listing
        if next_token in tokens:
            raise ListingFailed(f"ListBuckets repeated continuation token {next_token[:40]!r}")
        tokens.add(next_token)
        token = next_token


def _take(page: Any, listing: BucketListing, seen: set[str]) -> None:
    """Add one page's well-formed entries to ``listing``; count the rest."""
    listing.pages += 1
    if not isinstance(page, Mapping):
        listing.malformed_pages += 1
        return
    buckets = page.get("Buckets", [])
    if buckets is None:
        return
    if not isinstance(buckets, list):
        listing.malformed_pages += 1
        return
    for entry in buckets:
        name = entry.get("Name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not name:
            listing.skipped += 1
            continue
        if name in seen:
            listing.duplicates += 1
            continue
        seen.add(name)
        region = entry.get("BucketRegion")
        listing.refs.append(BucketRef(name, region if isinstance(region, str) and region else None))


def _log(listing: BucketListing) -> None:
    line: dict[str, Any] = {
        "buckets": len(listing.refs),
        "paged": listing.paged,
        "pages": listing.pages,
    }
    problems = {
        "skipped": listing.skipped,
        "duplicates": listing.duplicates,
        "malformed_pages": listing.malformed_pages,
    }
    line.update({name: count for name, count in problems.items() if count})
    if not listing.paged:
        line["sdk"] = _botocore_version()
        line["note"] = (
            f"this botocore has no ListBuckets pagination: one unpaged call (complete up to the "
            f"{UNPAGED_LIMIT:,}-bucket default quota), regions unknown (read via the home region)"
        )
    level = logging.WARNING if not listing.paged or any(problems.values()) else logging.INFO
    log_decision_at(log, level, "listed", **line)


def _botocore_version() -> str:
    try:
        import botocore

        return str(botocore.__version__)
    except Exception:  # pragma: no cover - botocore is always there with boto3
        return "unknown"
