"""The daily digest: one message listing every exposure already alerted that is still open.

Alerts go out once per exposure (see :mod:`handlers.exposure_ledger`); the digest keeps
the standing ones in view without an hourly page. It is sent by the first scheduled run
at or after ``SWEEP_DIGEST_HOUR`` (UTC) each day, from the ledger as that run leaves it
(with fan-out, workers may still be finishing: the digest then reflects the previous
sweep for their buckets). Its ``severity`` attribute is ``info`` so subscriptions that
filter for critical/high pages skip it.
"""

from __future__ import annotations

from datetime import datetime

from handlers.alert import Alert, safe_subject
from handlers.exposure_ledger import EXPOSED_STATUSES, LedgerEntry
from handlers.finding import SEVERITY_ORDER
from handlers.response_config import Settings

DIGEST_SCHEMA = "s3-public-exposure-digest/1"


def digest_due(now: datetime, digest_hour: int) -> bool:
    """Whether a run at ``now`` (UTC) may send today's digest."""
    return now.hour >= digest_hour


def open_exposures(entries: dict[str, LedgerEntry], alerted_now: str | None = None) -> list[LedgerEntry]:
    """Ledger entries still exposed, most severe first, then by bucket.

    ``alerted_now``: the current run's timestamp; entries it just alerted are left out.
    """
    open_ = [e for e in entries.values() if e.status in EXPOSED_STATUSES and e.alerted_at != alerted_now]
    return sorted(open_, key=lambda e: (-SEVERITY_ORDER.get(e.severity, 0), e.bucket))


def build_digest(entries: list[LedgerEntry], settings: Settings, day: str, checked_at: str) -> Alert:
    """The digest message for ``entries`` (already alerted, still open)."""
    account = settings.expected_account_id
    public = [e for e in entries if e.status == "public-now"]
    held = [e for e in entries if e.status == "exposable"]
    subject = safe_subject(
        f"[DIGEST] {len(public)} public, {len(held)} held back only by BPA (known S3 exposures)",
        f"in {settings.account_name} {account}",
    )
    lines = [
        subject,
        "",
        f"Exposures reported before and still open on {day} (UTC). Each was alerted once, when first seen",
        "or when it changed; this digest repeats them daily until they are closed or excepted.",
    ]
    for title, group in (("PUBLIC NOW", public), ("HELD BACK ONLY BY BLOCK PUBLIC ACCESS", held)):
        lines += ["", f"{title} ({len(group)})"]
        for entry in group:
            lines.append(
                f"  [{entry.severity.upper()}] {entry.bucket} ({entry.region or '?'}): "
                f"{', '.join(entry.signature) or '-'}; first alerted {entry.alerted_at or '?'} "
                f"by the {entry.source} path"
            )
        if not group:
            lines.append("  none")
    lines += [
        "",
        f"To close one: aws s3api put-public-access-block --bucket <name> --expected-bucket-owner {account} "
        "--public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,"
        "BlockPublicPolicy=true,RestrictPublicBuckets=true",
        f"To accept one: add it to EXCEPTION_BUCKETS or tag it {settings.approval_tag}=<YYYY-MM-DD expiry>.",
    ]
    text = "\n".join(lines) + "\n"
    payload = {
        "schema": DIGEST_SCHEMA,
        "subject": subject,
        "day": day,
        "checkedAt": checked_at,
        "account": {"id": account, "name": settings.account_name, "environment": settings.environment},
        "exposures": [
            {
                "bucket": e.bucket,
                "region": e.region,
                "status": e.status,
                "severity": e.severity,
                "signature": list(e.signature),
                "alertedAt": e.alerted_at,
                "source": e.source,
            }
            for e in entries
        ],
        "text": text,
    }
    attributes = {
        "severity": "info",
        "verdict": "digest",
        "account": account,
        "environment": settings.environment,
        "exposure": "digest",
    }
    return Alert(subject=subject, text=text, payload=payload, attributes=attributes)
