"""How bad is it: the severity of a confirmed finding, with the reasons for the level.

Levels (highest first):
- critical: public now (or unconfirmed) in a production account with public write or
  ACL-write access; or public read of a bucket tagged sensitive (any environment).
- high: public now or unconfirmed; account-level BPA weakened; trail tampering;
  an event from an unexpected account.
- medium: held back only by BPA (exposable), closed again by the time we looked,
  the bucket deleted meanwhile, or an undetermined record with nothing public now.
- low: a failed attempt (nothing changed), an approved exception (public read only: an
  approval never covers write, ACL-write or policy-write access), or an approval tag set,
  extended or removed (an audit record of who approved what, until when).

On a production account, a ``first-time`` actor (its CloudTrail history shows neither this call
nor any other watched S3 permission call: :mod:`handlers.response.actor_history`) raises the level one
step (:func:`raised_for_first_time`). A trusted-automation match never lowers it.

Write access is one definition (:data:`handlers.detection.access_levels.WRITE_ACCESS`, policy-write
included), shared with the record-only severity of ``detect``.
"""

from __future__ import annotations

from handlers.detection.access_levels import READ_ACCESS, WRITE_ACCESS
from handlers.detection.approvals import Approval
from handlers.detection.finding import SEVERITIES, SEVERITY_ORDER, Finding, Severity
from handlers.response.exposure import Exposure

EXPOSED_STATUSES = frozenset({"public-now", "unknown"})


def is_sensitive(tags: dict[str, str] | None, tag: str, values: frozenset[str]) -> bool:
    """Whether the bucket's classification tag names one of the sensitive values."""
    if not tags:
        return False
    value = next((v for k, v in tags.items() if k.lower() == tag.lower()), None)
    return value is not None and value.strip().lower() in values


def public_access(finding: Finding, exposure: Exposure) -> list[str]:
    """Access to weigh: public now, plus what the event granted (live during the exposure window)."""
    if exposure["status"] not in EXPOSED_STATUSES:
        return []
    levels = set(exposure["access"]) | {
        a for p in exposure["paths"] for a in p["access"] if not p["held_back_by"]
    }
    if finding["verdict"] == "public":
        levels |= set(finding["access"])
    levels.discard("unknown")
    return sorted(levels)


def rate(
    finding: Finding,
    exposure: Exposure,
    approval: Approval,
    *,
    production: bool,
    sensitive: bool,
    account_mismatch: bool = False,
) -> tuple[Severity, str]:
    """The severity of ``finding`` given what is true now, and a one-line justification."""
    if account_mismatch:
        return "high", "the event comes from an account this stack does not watch; nothing was checked"
    verdict = finding["verdict"]
    if verdict == "tamper":
        return "high", "the audit trail this detector relies on was tampered with"
    if verdict == "attempt":
        return "low", "the call failed, so nothing changed; the attempt itself is worth a look"
    if verdict == "approval":
        if exposure["status"] in EXPOSED_STATUSES and not approval.approved and not approval.unknown:
            return (
                "high",
                f"the approval change leaves the bucket public without a valid approval: {approval.reason}",
            )
        return "low", "a public-access approval was set, changed or removed: an audit record"
    if approval.approved:
        return "low", f"approved exception: {approval.reason}"
    status = exposure["status"]
    if finding["scope"] == "account":
        if status == "closed":
            return "medium", "account-level Block Public Access was weakened, but all four flags are on again"
        return (
            "high",
            "account-level Block Public Access is weakened: every bucket in the account depends on it",
        )
    if status in EXPOSED_STATUSES:
        access = set(public_access(finding, exposure))
        state = "public now" if status == "public-now" else "possibly public (state could not be confirmed)"
        if production and access & WRITE_ACCESS:
            return "critical", f"{state} with write or ACL-write access in a production account"
        if sensitive and access & READ_ACCESS:
            return "critical", f"{state} with read access on a bucket tagged as holding sensitive data"
        return "high", state
    if status == "exposable":
        return "medium", "a public policy or ACL is in place, held back only by Block Public Access"
    if status == "gone":
        return "medium", "the bucket was deleted after the event; check what was read while it existed"
    return "medium", "nothing is public now; the change is still worth a look"


_BY_ORDER: dict[int, Severity] = dict(enumerate(SEVERITIES))


def raised_for_first_time(
    severity: Severity, reason: str, history: object, *, production: bool, verdict: str
) -> tuple[Severity, str]:
    """One level up for a first-time actor on a production account (never above critical).

    ``history`` is the alert's ``actorHistory`` (or ``None``); only a proven ``first-time``
    verdict counts: a partial read that found nothing is ``unknown``, and changes nothing.
    An approval-tag audit is about the approver, not an exposure: left as it is.
    """
    if (
        not production
        or verdict == "approval"
        or not isinstance(history, dict)
        or history.get("verdict") != "first-time"
    ):
        return severity, reason
    raised = _BY_ORDER[min(SEVERITY_ORDER[severity] + 1, SEVERITY_ORDER["critical"])]
    note = (
        "first-time actor on a production account (no earlier call of this or any watched S3 permission API)"
    )
    if raised == severity:
        return severity, f"{reason}; {note}"
    return raised, f"{reason}; raised from {severity}: {note}"
