"""The daily digest: one message listing every exposure already alerted that is still open.

Alerts go out once per exposure (see :mod:`handlers.response.exposure_ledger`); the digest keeps
the standing ones in view without an hourly page. It is sent by the first scheduled run
at or after ``SWEEP_DIGEST_HOUR`` (UTC) each day, from the ledger as that run leaves it
(with fan-out, workers may still be finishing: the digest then reflects the previous
sweep for their buckets). Its ``severity`` attribute is ``info`` so subscriptions that
filter for critical/high pages skip it.
"""

from __future__ import annotations

from datetime import datetime

from handlers.detection.finding import SEVERITY_ORDER
from handlers.detection.safe_text import checked_bucket, inline, shown
from handlers.response.alert import COMMAND_PREFIX, Alert, cut_text, safe_subject
from handlers.response.cli_commands import bucket_fix_command
from handlers.response.exposure_ledger import EXPOSED_STATUSES, LedgerEntry
from handlers.response.response_config import Settings

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


DIGEST_TEXT_BUDGET = 24_000  # bytes of body; the JSON payload lists every entry anyway
_ENTRY_LIMITS = (None, 200, 100, 50, 20, 10, 5, 1)  # entries shown per group, tightened until it fits


def build_digest(entries: list[LedgerEntry], settings: Settings, day: str, checked_at: str) -> Alert:
    """The digest message for ``entries`` (already alerted, still open).

    Every value from the ledger is shown through :mod:`handlers.detection.safe_text`; each bucket gets its
    own fix command (shell-quoted, only for a valid bucket name), on a line of its own.
    """
    account = settings.expected_account_id
    public = [e for e in entries if e.status == "public-now"]
    held = [e for e in entries if e.status == "exposable"]
    subject = safe_subject(
        f"[DIGEST] {len(public)} public, {len(held)} held back only by BPA (known S3 exposures)",
        f"in {settings.account_name} {account}",
    )
    lines: list[str] = []
    for limit in _ENTRY_LIMITS:
        lines = _digest_lines(subject, public, held, settings, day, limit)
        if len("\n".join(lines).encode("utf-8")) < DIGEST_TEXT_BUDGET:
            break
    text = cut_text("\n".join(lines) + "\n", DIGEST_TEXT_BUDGET)
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


def _digest_lines(
    subject: str,
    public: list[LedgerEntry],
    held: list[LedgerEntry],
    settings: Settings,
    day: str,
    limit: int | None,
) -> list[str]:
    """The digest body, listing at most ``limit`` entries per group (all when ``None``)."""
    account = settings.expected_account_id
    lines = [
        subject,
        "",
        f"Exposures reported before and still open on {inline(day, 40)} (UTC). Each was alerted once, "
        "when first seen",
        "or when it changed; this digest repeats them daily until they are closed or excepted.",
    ]
    for title, group in (("PUBLIC NOW", public), ("HELD BACK ONLY BY BLOCK PUBLIC ACCESS", held)):
        lines += ["", f"{title} ({len(group)})"]
        shown_entries = group if limit is None else group[:limit]
        for entry in shown_entries:
            lines.append(
                f"  [{inline(entry.severity, 20).upper()}] "
                f"{shown(entry.bucket, checked_bucket, 'bucket name', limit=255)} "
                f"({inline(entry.region, 40, '?')}): {inline(', '.join(entry.signature), 300)}; "
                f"first alerted {inline(entry.alerted_at, 40, '?')} by the {inline(entry.source, 40)} path"
            )
            command = bucket_fix_command(entry.bucket, account)
            if command:
                lines.append(f"{COMMAND_PREFIX}{command}")
        if len(shown_entries) < len(group):
            lines.append(
                f"  ... {len(group) - len(shown_entries)} more (all in the JSON payload's exposures)"
            )
        if not group:
            lines.append("  none")
    lines += [
        "",
        "To close one: run the command under it (all four Block Public Access flags on that bucket).",
        "To accept one: add it to EXCEPTION_BUCKETS or tag it "
        f"{inline(settings.approval_tag, 128)}=YYYY-MM-DD (the approval's expiry date).",
    ]
    return lines
