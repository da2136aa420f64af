"""The alert: a subject line, a body a responder can act on, and a JSON payload for machines.

One SNS message carries both (``MessageStructure=json``): the ``default`` key holds the human
body (e-mail and every protocol without its own key get it); SQS, Lambda, HTTP(S) and Firehose
subscribers get the JSON payload (schema ``s3-public-exposure-alert/1``), which also holds the
body under ``text``. Message attributes (severity, verdict, bucket, account, environment,
remediation) let subscriptions filter, e.g. only critical and high to the pager.

Much of what an alert quotes was written by whoever exposed the bucket (object keys, user
agents, policy text, tag values) or, for a forged invocation, by whoever invoked the detector.
So every such string passes through :mod:`handlers.detection.safe_text` before it reaches the subject,
the body, a command or a link:

- values are escaped onto one line, chat syntax neutralised, lengths capped;
- links are built only from validated regions, event ids, bucket and user names, always to an
  AWS console host; commands only from validated values, with shell quoting, each on its own
  line after :data:`COMMAND_PREFIX` (no untrusted text can start a line, so these lines are ours);
- the payload's data fields keep the raw values (consumers need them); its ``text`` and
  ``subject`` are the safe ones.

Every message :func:`sns_message` builds fits SNS's 256 KB limit and keeps its JSON structure:
when too big, content is shortened (long strings and lists, each with a marker and a count),
never the structure.
"""

from __future__ import annotations

import json
import re
import shlex
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from handlers.detection.approvals import Approval
from handlers.detection.finding import Finding
from handlers.detection.rules import TARGET_LABELS
from handlers.detection.safe_text import (
    checked_access_point,
    checked_account,
    checked_arn,
    checked_bucket,
    checked_event_id,
    checked_region,
    checked_username,
    console_url,
    inline,
    shell_command,
    shown,
)
from handlers.response import aws_clients
from handlers.response.cli_commands import (
    account_check_command,
    account_fix_command,
    bucket_fix_command,
    lookup_events_command,
    ownership_enforced_command,
)
from handlers.response.exposure import BPA_FLAGS, Exposure
from handlers.response.remediation import Remediation
from handlers.response.response_config import Settings

SUBJECT_LIMIT = 99  # SNS: "less than 100 characters"
SNS_MAX_BYTES = 262_144  # SNS: 256 KiB for message, subject and attributes together (UTF-8 bytes)
MESSAGE_LIMIT = SNS_MAX_BYTES
TEXT_BUDGET = 12_000  # bytes of body: it travels six times (default + five payload copies)
PAYLOAD_SCHEMA = "s3-public-exposure-alert/1"
JSON_PROTOCOLS = ("sqs", "lambda", "http", "https", "firehose")
DEFAULT_REGION = "us-east-1"  # for links when a finding names no region at all
COMMAND_PREFIX = "    $ "  # every command line in a body starts with exactly this
WHO_HEADER = "WHO, AND HAVE THEY DONE THIS BEFORE"
SECTION_HEADERS = (
    "WHAT HAPPENED",
    WHO_HEADER,
    "WHEN",
    "STATE NOW",
    "SEVERITY",
    "WHAT WAS DONE",
    "RESPONSE CHECKLIST",
    "LINKS",
)
STATUS_WORDS = {
    "public-now": "PUBLIC NOW",
    "exposable": "held back only by Block Public Access (one change away from public)",
    "closed": "not public",
    "unknown": "could not be confirmed; treated as exposed",
    "gone": "bucket deleted",
    "weakened": "account-level guard weakened",
    "not-checked": "not checked",
}
REMEDIATION_WORDS = {
    "pending": "pending (put, but not yet visible in the read-back)",
    "unverified": "unverified (put, but the read-back failed)",
}
CONFIRMING = ("applied", "unverified", "would-apply", "pending")  # statuses whose undo is shown


class Alert(TypedDict):
    """A built alert, ready to publish (and to store for a retry)."""

    subject: str
    text: str
    payload: dict[str, Any]
    attributes: dict[str, str]
    # A stored alert's sinks still owed (handlers.response.sinks); absent: every configured sink.
    sinks: NotRequired[list[str]]


# ---- subject -------------------------------------------------------------------------------------

# The stand-ins safe_text uses are not ASCII; in a subject they become ASCII that is not syntax either.
_SUBJECT_STANDINS = str.maketrans(
    {"\u2039": "(", "\u203a": ")", "\uff20": "(at)", "\uff3d": "]", "\uff06": "+"}
)
_SUBJECT_MENTION = re.compile(r"@(?=here|channel|everyone)|(?<![A-Za-z0-9_.+-])@(?=\w)", re.I)


def safe_subject(text: str, suffix: str = "") -> str:
    """An SNS-safe subject: ASCII, one line, no control characters or chat syntax, under 100 characters.

    When too long, ``text`` is shortened and ``suffix`` (the account) kept, if it fits.
    """
    head, tail = _one_ascii_line(text), _one_ascii_line(suffix)
    tail = f" {tail}" if tail else ""
    if len(head) + len(tail) <= SUBJECT_LIMIT:
        return (head + tail).strip() or "S3 public access alert"
    if len(tail) > SUBJECT_LIMIT // 2:
        whole = head + tail
        return whole[: SUBJECT_LIMIT - 3].rstrip() + "..."
    return head[: SUBJECT_LIMIT - len(tail) - 3].rstrip() + "..." + tail


def _one_ascii_line(text: object) -> str:
    raw = text if isinstance(text, str) else inline(text, limit=SUBJECT_LIMIT * 2, empty="")
    raw = raw.translate(_SUBJECT_STANDINS)
    ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    line = re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f]", " ", ascii_text)).strip()
    # NFKD turns fullwidth stand-ins back into syntax, so neutralise again, in ASCII. Mentions
    # first: their "(at)" after a "]" would make a markdown link joint, which the next line breaks.
    line = _SUBJECT_MENTION.sub("(at)", line)
    line = line.replace("<", "(").replace(">", ")").replace("&", "+").replace("](", "] (")
    return line.replace("://", "[:]//")


# ---- what happened, in a few words ---------------------------------------------------------------


def _name(value: object) -> str:
    return inline(value, limit=120, empty="?")


def headline(finding: Finding, exposure: Exposure) -> str:
    """What happened, in a few words, without severity or location (values made safe)."""
    bucket = _name(finding.get("bucket"))
    event_name = _name(finding.get("eventName"))
    access = f" ({_name(', '.join(map(str, finding.get('access') or [])))})" if finding.get("access") else ""
    exposure_access = _name(", ".join(map(str, exposure.get("access") or [])))
    now_public = f", now public ({exposure_access})" if exposure.get("status") == "public-now" else ""
    verdict, kind, scope = finding.get("verdict"), finding.get("kind"), finding.get("scope")
    if kind == "sweep":  # found by the scheduled sweep: a state, not an event
        if exposure.get("status") == "public-now":
            shown_access = exposure_access if exposure.get("access") else "unknown"
            return f"S3 bucket {bucket} is public ({shown_access}) [sweep]"
        return f"S3 bucket {bucket} is held back only by BPA [sweep]"
    if verdict == "tamper":
        return f"CloudTrail tampering: {event_name}"
    if verdict == "approval":
        return f"S3 bucket {bucket} public-access approval set/changed ({event_name})"
    # Targets other than buckets (access points, Outposts, ...): the rules name them (TARGETS).
    label = TARGET_LABELS.get(str(scope))
    named_target = f"{label} {_name(finding.get('accessPoint'))}" if label else None
    if verdict == "attempt":
        if kind == "trail":  # a failed StopLogging, DeleteTrail, key or trail-bucket change
            return f"Failed attempt to tamper with CloudTrail ({event_name})"
        if kind == "approval":
            return f"Failed attempt to change the public-access approval of S3 bucket {bucket} ({event_name})"
        target = "account" if scope == "account" else named_target or f"bucket {bucket}"
        return f"Failed attempt to expose S3 {target} ({event_name})"
    if scope == "account":
        return "S3 account-level Block Public Access weakened"
    if named_target:
        made = "possibly made public" if verdict == "undetermined" else "made public"
        return f"S3 {named_target} {made}{access}"
    if verdict == "undetermined":
        return f"S3 bucket {bucket} possibly made public ({event_name}){now_public}"
    if kind == "block-public-access":
        return f"S3 bucket {bucket} BPA weakened{now_public}"
    if kind == "ownership":
        return f"S3 bucket {bucket} ACLs re-enabled{now_public}"
    if scope == "object":
        return f"S3 object in bucket {bucket} made public{access}"
    return f"S3 bucket {bucket} made public{access}"


# ---- links and names -----------------------------------------------------------------------------


def _link_region(region: object) -> str | None:
    """The region links use: the finding's if valid, the default if it names none, else None."""
    if region is None or region == "":
        return DEFAULT_REGION
    return checked_region(region)


def console_links(finding: Finding) -> dict[str, str]:
    """Deep links (the CloudTrail event, the bucket's permissions tab, the actor's recent events).

    Each is built only from validated values and always points at an AWS console host; a link
    whose region, event id, bucket or user name fails validation is left out.
    """
    region = _link_region(finding.get("region"))
    links: dict[str, str] = {}
    event_id = checked_event_id(finding.get("eventID"))
    if region and event_id:
        url = console_url(region, ["cloudtrailv2", "home"], [("region", region)], ["events", event_id])
        if url:
            links["cloudtrailEvent"] = url
    bucket = checked_bucket(finding.get("bucket"))
    if bucket:
        query = [("region", region), ("tab", "permissions")] if region else [("tab", "permissions")]
        url = console_url(None, ["s3", "buckets", bucket], query, s3_global=True)
        if url:
            links["bucket"] = url
    user = actor_username(finding.get("actor"))
    if region and user:
        url = console_url(
            region, ["cloudtrailv2", "home"], [("region", region)], ["events"], [("Username", user)]
        )
        if url:
            links["actorEvents"] = url
    return links


def lookup_username(actor: str | None) -> str | None:
    """The CloudTrail "User name" lookup value for an actor ARN: user name, role session, or root."""
    if not actor or not isinstance(actor, str) or not actor.startswith("arn:"):
        return None
    resource = actor.split(":", 5)[-1]
    if resource == "root":
        return "root"
    return resource.rsplit("/", 1)[-1] or None


def actor_username(actor: object) -> str | None:
    """:func:`lookup_username` of a well-formed actor ARN, when the name is a sane IAM name; else None.

    Only such a name goes into a link or a command.
    """
    arn = checked_arn(actor)
    return checked_username(lookup_username(arn)) if arn else None


def _checked_access_point_or_arn(value: object) -> str | None:
    return checked_access_point(value) or checked_arn(value)


def _flags_text(flags: Mapping[str, object] | None, state: object) -> str:
    if state == "not-set":
        return "not set (all four off)"
    if state in ("unknown", "not-read"):
        return "could not be read" if state == "unknown" else "not read"
    flags = flags if isinstance(flags, Mapping) else {}
    return ", ".join(f"{flag}={'on' if flags.get(flag) else 'off'}" for flag in BPA_FLAGS)


def is_command(command: object) -> bool:
    """Whether ``command`` is an ``aws`` command line exactly as :func:`shell_command` spells it.

    Only such strings are shown as command lines; anything else (a sentence, a hand-made string)
    is shown as text.
    """
    if not isinstance(command, str) or not command:
        return False
    try:
        argv = shlex.split(command)
    except ValueError:
        return False
    return (
        bool(argv)
        and argv[0] == "aws"
        and shell_command(argv) == command
        and inline(command, limit=4096) == command
    )


def command_lines(text: str) -> list[str]:
    """The commands in an alert body: the rest of every line that starts with :data:`COMMAND_PREFIX`."""
    return [line[len(COMMAND_PREFIX) :] for line in text.splitlines() if line.startswith(COMMAND_PREFIX)]


# ---- the alert -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Caps:
    """How much of each untrusted value the body shows (tightened until the body fits its budget)."""

    items: int  # entries shown per list (reasons, failures)
    item: int  # characters per list entry or long value (reasons, keys)
    value: int  # characters per short value (names, agents)
    long: int  # characters of a long single value (disagreement, severity reason)


_BODY_CAPS = (
    _Caps(items=25, item=500, value=300, long=2000),
    _Caps(items=10, item=300, value=200, long=1000),
    _Caps(items=5, item=200, value=120, long=500),
    _Caps(items=3, item=120, value=80, long=240),
    _Caps(items=1, item=80, value=60, long=120),
)


def build_alert(
    finding: Finding,
    exposure: Exposure,
    severity: str,
    severity_reason: str,
    approval: Approval,
    remediation: Remediation,
    settings: Settings,
    *,
    checked_at: str,
    account_mismatch: bool = False,
    history: Mapping[str, Any] | None = None,
) -> Alert:
    """Assemble subject, human body and JSON payload for one finding.

    ``history``: the actor's CloudTrail history (``actorHistory`` in the payload), when read.
    """
    account = finding.get("account") or "unknown-account"
    where = f"in {settings.account_name} {account}"
    if account_mismatch:
        where = f"in UNEXPECTED account {account} (stack watches {settings.expected_account_id})"
    subject = safe_subject(f"[{str(severity).upper()}] {headline(finding, exposure)}", where)
    links = console_links(finding)
    window_end = checked_at if remediation.get("status") == "applied" else None
    payload: dict[str, Any] = {
        "schema": PAYLOAD_SCHEMA,
        "subject": subject,
        "severity": severity,
        "severityReason": severity_reason,
        "account": {
            "id": account,
            "name": settings.account_name,
            "environment": settings.environment,
            "production": settings.production,
            "expected": settings.expected_account_id,
            "mismatch": account_mismatch,
        },
        "finding": dict(finding),
        "exposure": dict(exposure),
        "approval": {
            "approved": approval.approved,
            "basis": approval.basis,
            "reason": approval.reason,
            "expires": approval.expires,
            "state": getattr(approval, "state", None),
        },
        "remediation": dict(remediation),
        "previousBpa": {"state": remediation.get("previous_state"), "flags": remediation.get("previous")},
        "exposureWindow": {"from": finding.get("eventTime"), "to": window_end},
        "actorHistory": dict(history) if history is not None else None,
        "checkedAt": checked_at,
        "links": links,
    }
    parts = (finding, exposure, severity, severity_reason, approval, remediation, settings, payload)
    text = _fit_body(lambda caps: _body(*parts, caps))
    payload["text"] = text
    attributes = {
        "severity": str(severity),
        "verdict": str(finding.get("verdict")),
        "account": str(account),
        "environment": settings.environment,
        "remediation": str(remediation.get("status")),
        "exposure": str(exposure.get("status")),
    }
    if finding.get("bucket"):
        attributes["bucket"] = str(finding["bucket"])
    return Alert(subject=subject, text=text, payload=payload, attributes=attributes)


def _fit_body(render: Callable[[_Caps], list[str]], budget: int = TEXT_BUDGET) -> str:
    """The body at the most generous caps that fit ``budget`` bytes; cut by lines as a last resort."""
    lines: list[str] = []
    for caps in _BODY_CAPS:
        lines = render(caps)
        text = "\n".join(lines) + "\n"
        if len(text.encode("utf-8")) <= budget:
            return text
    return cut_text("\n".join(lines) + "\n", budget)


def cut_text(text: str, budget: int) -> str:
    """``text`` cut after whole lines to at most ``budget`` bytes, ending with a line that says so.

    Whole lines only: a command or link line is either there, complete, or not there at all.
    """
    if len(text.encode("utf-8")) <= budget:
        return text
    lines = text.splitlines()
    kept: list[str] = []
    used = 0
    reserve = 120  # room for the marker line
    for line in lines:
        size = len(line.encode("utf-8")) + 1
        if used + size > budget - reserve:
            break
        kept.append(line)
        used += size
    omitted = len(lines) - len(kept)
    kept.append(f"  ... {omitted} more lines of this alert omitted to fit the message size limit")
    return "\n".join(kept) + "\n"


def _listed(
    prefix: str, items: object, caps: _Caps, what: str, render: Callable[[object], str] | None = None
) -> list[str]:
    """One line per entry (at most ``caps.items``), then a line counting the entries left out."""
    entries = list(items) if isinstance(items, list | tuple) else ([] if items is None else [items])
    show = render or (lambda item: inline(item, caps.item))
    lines = [f"{prefix}{show(item)}" for item in entries[: caps.items]]
    if len(entries) > caps.items:
        lines.append(f"  ... {len(entries) - caps.items} more {what} omitted (see the JSON payload)")
    return lines


def _joined(items: object, limit: int) -> str:
    """A list as one safe, capped line; a very long list says how many entries it left out."""
    values = list(items) if isinstance(items, list | tuple) else []
    shown_values = [inline(v, limit) for v in values[:200]]
    if len(values) > 200:
        shown_values.append(f"… {len(values) - 200} more")
    return inline(", ".join(shown_values), limit)


def _command(label: str, command: object, fallback: str) -> list[str]:
    """``label`` then the command on its own line; ``fallback`` (already safe) when there is none."""
    if is_command(command):
        return [label, f"{COMMAND_PREFIX}{command}"]
    if isinstance(command, str) and command:  # a sentence, not a command (e.g. state unreadable)
        return [f"{label} {inline(command, 600)}"]
    return [f"{label} {fallback}"]


def _body(
    finding: Finding,
    exposure: Exposure,
    severity: str,
    severity_reason: str,
    approval: Approval,
    remediation: Remediation,
    settings: Settings,
    payload: dict[str, Any],
    caps: _Caps,
) -> list[str]:
    def value(item: object, empty: str = "-") -> str:
        return inline(item, caps.value, empty)

    account = shown(finding.get("account"), checked_account, "account id", empty="unknown")
    bucket = shown(finding.get("bucket"), checked_bucket, "bucket name", limit=caps.value)
    region = shown(finding.get("region"), checked_region, "region", empty="unknown region")
    links = payload["links"]
    lines = [payload["subject"], ""]

    lines.append("WHAT HAPPENED")
    if finding.get("bucket"):
        target = f"bucket {bucket}"
    elif finding.get("accessPoint"):
        point = shown(
            finding.get("accessPoint"), _checked_access_point_or_arn, "access point", limit=caps.value
        )
        target = f"access point {point}"
    else:
        target = "the account"
    if finding.get("key"):
        target = f"object {inline(finding.get('key'), caps.item)} in bucket {bucket}"
    lines.append(
        f"  {value(finding.get('eventName'))} on {target}, account {value(settings.account_name)} {account}, "
        f"{region}"
    )
    lines.append(
        f"  Verdict: {value(finding.get('verdict'))} ({value(finding.get('kind'))}, "
        f"{value(finding.get('scope'))} level)"
    )
    if finding.get("access") or finding.get("principals"):
        lines.append(
            f"  Granted: {_joined(finding.get('access'), caps.item)} "
            f"to {_joined(finding.get('principals'), caps.item)}"
        )
    lines += _listed("  Why: ", finding.get("reasons"), caps, "reasons")
    if finding.get("error"):
        message = f" {value(finding.get('errorMessage'))}" if finding.get("errorMessage") else ""
        lines.append(f"  The call failed: {value(finding.get('error'))}{message}")

    lines += ["", WHO_HEADER]
    lines += _who(finding, payload.get("actorHistory"), caps)

    if finding.get("kind") == "sweep":
        when = (
            f"  Found by the scheduled sweep at {value(payload['checkedAt'])}; "
            "the change itself was not observed"
        )
    else:
        event_id = shown(finding.get("eventID"), checked_event_id, "event id", empty="none")
        when = f"  Event time: {value(finding.get('eventTime'), 'unknown')} (CloudTrail eventID {event_id})"
    lines += ["", "WHEN", when]

    lines += ["", f"STATE NOW (checked {value(payload['checkedAt'])})"]
    status = exposure.get("status")
    lines.append(f"  Exposure: {STATUS_WORDS.get(str(status)) or value(status)}")
    if exposure.get("access"):
        lines.append(f"  Public access now: {_joined(exposure.get('access'), caps.item)}")
    lines += _listed("  - ", exposure.get("reasons"), caps, "reasons")
    if exposure.get("disagreement"):
        lines.append(f"  DISAGREEMENT: {inline(exposure.get('disagreement'), caps.long)}")
    access_point = exposure.get("access_point")
    if isinstance(access_point, Mapping):
        lines.append(
            f"  Access point {value(access_point.get('name'))}: "
            f"bucket {value(access_point.get('bucket'))}, network origin "
            f"{value(access_point.get('networkOrigin'))}; its own Block Public Access: "
            + _flags_text(access_point.get("bpa"), access_point.get("bpaState"))
        )
    if exposure.get("bucket_bpa_state") != "not-read":
        lines.append(
            "  Bucket Block Public Access: "
            + _flags_text(exposure.get("bucket_bpa"), exposure.get("bucket_bpa_state"))
        )
    if exposure.get("account_bpa_state") != "not-read":
        lines.append(
            "  Account Block Public Access: "
            + _flags_text(exposure.get("account_bpa"), exposure.get("account_bpa_state"))
        )
    if exposure.get("ownership") or exposure.get("bucket_bpa_state") != "not-read":
        lines.append(f"  Object ownership: {value(exposure.get('ownership'), 'not set (ACLs honoured)')}")
    lines += _listed(
        "  COULD NOT CHECK: ",
        exposure.get("failures"),
        caps,
        "failed reads",
        lambda failure: _failure_text(failure, caps),
    )
    if finding.get("bucket") and status != "not-checked":
        lines.append(f"  Approval: {inline(approval.reason, caps.item)}")

    lines += ["", f"SEVERITY: {value(severity).upper()} - {inline(severity_reason, caps.long)}"]

    lines += ["", "WHAT WAS DONE"]
    status_word = REMEDIATION_WORDS.get(str(remediation.get("status"))) or value(remediation.get("status"))
    lines.append(
        f"  Mode {value(remediation.get('mode'))}: {status_word} - "
        f"{inline(remediation.get('detail'), caps.long)}"
    )
    if remediation.get("status") == "pending":
        lines += _command(
            "  Account-level Block Public Access takes minutes to propagate; confirm it with:",
            account_check_command(settings.expected_account_id),
            "(no command: the account id is invalid)",
        )
    if remediation.get("previous_state") not in (None, "not-read"):
        lines.append(
            f"  Previous BPA: {_flags_text(remediation.get('previous'), remediation.get('previous_state'))}"
        )
    error = remediation.get("error")
    if isinstance(error, Mapping):
        lines.append(
            f"  FAILED CALL: {value(error.get('call'))}: {value(error.get('error'))}: "
            f"{inline(error.get('message'), caps.item)}"
        )
    if remediation.get("status") in CONFIRMING:
        lines += _command(
            "  Undo:", remediation.get("undo"), "no command (a value it needs is invalid; see above)"
        )

    lines += ["", "RESPONSE CHECKLIST"]
    for step, commands in _checklist(
        finding, exposure, severity, approval, remediation, settings, payload, caps
    ):
        lines.append(f"  [ ] {step}")
        lines += commands

    lines += ["", "LINKS"]
    for name, label in (
        ("cloudtrailEvent", "CloudTrail event"),
        ("bucket", "Bucket permissions"),
        ("actorEvents", "Actor's recent events"),
    ):
        if name in links:
            lines.append(f"  {label}: {links[name]}")
    if _link_region(finding.get("region")) is None:
        lines.append(f"  CloudTrail links omitted: {region}")
    if finding.get("bucket") and "bucket" not in links:
        lines.append(f"  Bucket link omitted: {bucket}")
    return lines


ORIGIN_WORDS = {
    "console": "the AWS console",
    "cli": "the AWS CLI",
    "sdk": "an AWS SDK (a script or application)",
    "terraform": "Terraform",
    "aws-service": "an AWS service on the caller's behalf",
}


def _who(finding: Finding, history: object, caps: _Caps) -> list[str]:
    """Who made the call, how they signed in, and what their CloudTrail history says."""

    def value(item: object, empty: str = "-") -> str:
        return inline(item, caps.value, empty)

    if finding.get("kind") == "sweep":
        return ["  Not known: the sweep saw the state, not the change (see step 2 below)."]
    lines = [
        f"  Actor: {value(finding.get('actor'), 'unknown')}",
        f"  Source IP: {value(finding.get('sourceIPAddress'), 'unknown')}",
        f"  User agent: {value(finding.get('userAgent'), 'unknown')}",
        f"  Origin: {ORIGIN_WORDS.get(str(finding.get('client')), 'unknown tool')} (from the user agent, "
        "which the caller chooses)",
    ]
    session = finding.get("session")
    if isinstance(session, Mapping):
        mfa = session.get("mfaAuthenticated")
        mfa_text = "yes" if mfa is True else "NO" if mfa is False else "not recorded"
        issuer = session.get("sessionIssuer")
        lines.append(
            f"  Signed in as {value(session.get('identityType'), 'unknown identity type')}; MFA: {mfa_text}"
            + (f"; session issued by {value(issuer)}" if issuer else "")
        )
    if isinstance(history, Mapping):
        from handlers.response.actor_history import (
            history_lines,  # deferred: actor_history reads our name helpers
        )

        lines += [f"  {line}" for line in history_lines(history)]
    else:
        lines.append("  History not checked: the actor-history query is turned off or did not run")
    return lines


def _failure_text(failure: object, caps: _Caps) -> str:
    if not isinstance(failure, Mapping):
        return inline(failure, caps.item)
    return (
        f"{inline(failure.get('call'), 80)} failed with {inline(failure.get('error'), 80)}: "
        f"{inline(failure.get('message'), caps.item)}"
    )


def _checklist(
    finding: Finding,
    exposure: Exposure,
    severity: str,
    approval: Approval,
    remediation: Remediation,
    settings: Settings,
    payload: dict[str, Any],
    caps: _Caps,
) -> list[tuple[str, list[str]]]:
    """Response steps: (text, command lines) each; every value in the text made safe."""

    def value(item: object, empty: str = "-") -> str:
        return inline(item, caps.value, empty)

    raw_account = finding.get("account") or settings.expected_account_id
    account = shown(raw_account, checked_account, "account id")
    raw_bucket = finding.get("bucket")
    bucket = shown(raw_bucket, checked_bucket, "bucket name", limit=caps.value)
    command_region = _link_region(finding.get("region"))
    tags = exposure.get("tags")
    if tags is None and exposure.get("bucket_bpa_state") != "not-read":
        tag_text = "tags could not be read"
    elif isinstance(tags, Mapping) and tags:
        tag_text = inline(", ".join(f"{k}={v}" for k, v in sorted(tags.items(), key=str)), caps.item)
    else:
        tag_text = "no tags"
    access = _joined(exposure.get("access") or finding.get("access"), caps.item)
    if access == "-":
        access = "none confirmed"
    environment = f"{value(settings.environment)}{' (production)' if settings.production else ''}"
    steps: list[tuple[str, list[str]]] = [
        (
            "1. Weigh account, bucket and permission: "
            f"account {value(settings.account_name)} {account} ({environment}); "
            f"bucket {bucket if raw_bucket else '-'} ({tag_text}); public access {access}. "
            f"Rated {value(severity)}.",
            [],
        )
    ]

    user = actor_username(finding.get("actor"))
    valid_bucket = checked_bucket(raw_bucket)
    if finding.get("kind") == "sweep" and raw_bucket:
        command = lookup_events_command(command_region, "ResourceName", valid_bucket)
        steps.append(_step("2. Who opened it, and when? The sweep saw the state, not the change:", command))
    elif user:
        console = payload["links"].get("actorEvents")
        where = f" (console: {console})" if console else ""
        command = lookup_events_command(command_region, "Username", user)
        answer = _history_answer(payload.get("actorHistory"))
        steps.append(
            _step(f"2. Has {value(finding.get('actor'))} done this before? {answer}{where}", command)
        )
    else:
        steps.append(
            (
                f"2. Has the actor ({value(finding.get('actor'), 'unknown')}) done this before? "
                "Search CloudTrail for it.",
                [],
            )
        )

    tag_name = value(settings.approval_tag)
    if finding.get("verdict") == "approval":
        steps.append(
            (
                "3. Was this approval agreed, and is its expiry right? "
                f"{inline(approval.reason, caps.item)}. "
                f"If not, remove the {tag_name} tag from {bucket} and review who may tag buckets.",
                [],
            )
        )
    elif raw_bucket:
        steps.append(
            (
                f"3. Should {bucket} be public? {inline(approval.reason, caps.item)}. If it should, add it "
                f"to EXCEPTION_BUCKETS or tag it {tag_name}=YYYY-MM-DD (the approval's expiry date).",
                [],
            )
        )
    else:
        steps.append(("3. Should this be public? Confirm with the owner of the change.", []))

    status = remediation.get("status")
    detail = inline(remediation.get("detail"), caps.long)
    if status == "applied":
        steps.append((f"4. Remediate fast: done at {value(payload['checkedAt'])} ({detail}).", []))
    elif status == "pending":
        steps.append(
            (f"4. Remediate fast: put at {value(payload['checkedAt'])}, not visible yet ({detail}).", [])
        )
    elif remediation.get("fix"):
        steps.append(_step("4. Remediate fast:", remediation.get("fix")))
    else:
        steps.append((f"4. Remediate fast: {detail}.", []))

    if raw_bucket and finding.get("verdict") not in ("attempt", "tamper", "approval"):
        end = value(payload["exposureWindow"]["to"] or "now (still open or unconfirmed)")
        review = (
            "the exposure review reads them when the window closes (and hourly while it is open) and "
            "reports in a follow-up alert"
            if settings.review_queue_url
            else "the exposure review is not deployed here (review.enabled), so read them yourself"
        )
        steps.append(
            (
                f"5. Was data read? Exposure window {value(finding.get('eventTime'), '?')} -> {end}: "
                f"S3 server access logs or CloudTrail data events for {bucket} "
                f"(GetObject, ListBucket, PutObject from outside {account}); {review}.",
                [],
            )
        )
    else:
        steps.append(("5. Check access logs: no exposure window (nothing changed on a bucket).", []))

    steps.append(_harden(finding, exposure, remediation, raw_account, raw_bucket, account, bucket))
    return steps


def _history_answer(history: object) -> str:
    """The one-sentence answer to "has this actor done this before?" from the actor history."""
    if not isinstance(history, Mapping):
        return "History not read (turned off or not run)."
    verdict = history.get("verdict")
    prefix = "Trusted automation (context only). " if history.get("trusted") else ""
    if verdict == "first-time":
        return f"{prefix}NO: first time (see WHO above); treat the principal as possibly compromised."
    if verdict == "seen-before":
        return f"{prefix}Yes (see WHO above)."
    return f"{prefix}Unknown: the history could not be read in full (see WHO above)."


def _harden(
    finding: Finding,
    exposure: Exposure,
    remediation: Remediation,
    raw_account: object,
    raw_bucket: object,
    account: str,
    bucket: str,
) -> tuple[str, list[str]]:
    """Step 6: the simplest preventive control for this path, with its command."""
    account_flags = _flags_text(exposure.get("account_bpa"), exposure.get("account_bpa_state"))
    account_text = f"account-level Block Public Access (now {account_flags}) blocks every bucket"
    account_command = account_fix_command(str(raw_account) if raw_account else None)
    valid_bucket = str(raw_bucket) if raw_bucket else None
    kind = finding.get("kind")
    if valid_bucket and kind == "acl":
        command = ownership_enforced_command(valid_bucket, str(raw_account) if raw_account else None)
        text = (
            "6. Harden: Object Ownership BucketOwnerEnforced turns ACLs off for good, so no ACL can "
            f"make {bucket} public again (check first that nothing relies on ACLs); or {account_text}:"
        )
    elif (
        valid_bucket
        and kind in ("policy", "access-point-policy")
        and remediation.get("status")
        not in (
            "applied",
            "pending",
        )
    ):
        command = bucket_fix_command(valid_bucket, str(raw_account) if raw_account else None)
        text = (
            f"6. Harden: Block Public Access on {bucket} (BlockPublicPolicy refuses any public policy "
            f"at the put); or {account_text}:"
        )
    else:
        command = None
        text = f"6. Harden: {account_text}:"
    commands = [f"{COMMAND_PREFIX}{c}" for c in (command, account_command) if c]
    if not account_command:
        commands.append(f"    account level: no command ({account})")
    if (
        valid_bucket
        and command is None
        and kind in ("acl", "policy", "access-point-policy")
        and remediation.get("status") not in ("applied", "pending")
    ):
        commands.append(f"    this bucket: no command ({bucket}, account {account})")
    return text, commands


def _step(text: str, command: object) -> tuple[str, list[str]]:
    """A checklist step with its command on the next line, or saying why there is none."""
    if is_command(command):
        return text, [f"{COMMAND_PREFIX}{command}"]
    if isinstance(command, str) and command:
        return f"{text} {inline(command, 600)}", []
    return f"{text} (no command: a value it needs is invalid; see above)", []


# ---- an event the detector refused ---------------------------------------------------------------


def build_rejection_alert(reason: str, event: object, settings: Settings, *, checked_at: str) -> Alert:
    """The alert for an event the detector refused to act on (forged or unexpected provenance).

    Nothing in ``event`` is trusted: its fields are quoted (escaped, capped) in the body and
    kept raw in ``payload["rejected"]``; nothing is linked and no command is built from them.
    """
    envelope: Mapping[str, Any] = event if isinstance(event, Mapping) else {}
    detail = envelope.get("detail")
    record: Mapping[str, Any] = detail if isinstance(detail, Mapping) else envelope
    claimed = {
        "source": envelope.get("source"),
        "detailType": envelope.get("detail-type"),
        "account": envelope.get("account", record.get("recipientAccountId")),
        "region": envelope.get("region", record.get("awsRegion")),
        "eventName": record.get("eventName"),
        "eventID": record.get("eventID"),
    }
    account = settings.expected_account_id
    subject = safe_subject(
        "[HIGH] Detector received an event it will not act on", f"in {settings.account_name} {account}"
    )
    kind = "an EventBridge envelope" if isinstance(detail, Mapping) else f"a {type(event).__name__}"
    text_lines = [
        subject,
        "",
        "WHAT HAPPENED",
        f"  The detector refused an event: {inline(reason, 500)}",
        "  Someone may have invoked the detector directly with a forged event; nothing was read or changed.",
        f"  The event arrived as {inline(kind, 60)}. As received (untrusted, shown escaped):",
        f"    Source: {inline(claimed['source'], 200)}",
        f"    Detail type: {inline(claimed['detailType'], 200)}",
        f"    Account: {shown(claimed['account'], checked_account, 'account id', limit=200)}",
        f"    Region: {shown(claimed['region'], checked_region, 'region', limit=200)}",
        f"    Event name: {inline(claimed['eventName'], 200)}",
        f"    Event ID: {shown(claimed['eventID'], checked_event_id, 'event id', limit=200)}",
        "",
        f"SEVERITY: HIGH - only the deployed EventBridge rules, for account {account}, should invoke it",
        "",
        "WHAT WAS DONE",
        "  Nothing: no bucket was read, no Block Public Access was changed. Further refusals within the",
        "  rate-limit window are logged and counted (metric RejectedEvents), not alerted.",
        "",
        "RESPONSE CHECKLIST",
        "  [ ] 1. Find who can invoke the function (lambda:InvokeFunction in IAM and its resource policy).",
        "  [ ] 2. Find who did: CloudTrail Invoke data events for the function, its rejected-event logs.",
        "  [ ] 3. If the caller was not the EventBridge rule, treat it as an intrusion attempt.",
    ]
    text = cut_text("\n".join(text_lines) + "\n", TEXT_BUDGET)
    payload: dict[str, Any] = {
        "schema": PAYLOAD_SCHEMA,
        "subject": subject,
        "severity": "high",
        "severityReason": "an event of forged or unexpected provenance reached the detector",
        "account": {
            "id": account,
            "name": settings.account_name,
            "environment": settings.environment,
            "production": settings.production,
            "expected": account,
            "mismatch": False,
        },
        "rejected": {"reason": reason, **claimed},
        "checkedAt": checked_at,
        "links": {},
        "text": text,
    }
    attributes = {
        "severity": "high",
        "verdict": "rejected",
        "account": account,
        "environment": settings.environment,
        "remediation": "skipped",
        "exposure": "not-checked",
    }
    return Alert(subject=subject, text=text, payload=payload, attributes=attributes)


# ---- the SNS message, at any size ----------------------------------------------------------------

# Payload keys kept as they are when shrinking: small, ours, and what consumers key on.
_PROTECTED = frozenset({"schema", "subject", "severity", "checkedAt", "links", "text", "shrunk"})
# (characters per string, entries per list), tried in order until the message fits.
_DATA_LEVELS = (
    (8192, 200),
    (4096, 100),
    (2048, 50),
    (1024, 25),
    (512, 10),
    (256, 5),
    (128, 3),
    (64, 1),
    (32, 0),
)
_TEXT_LEVELS = (8192, 4096, 2048, 1024, 512)
_SURROGATE = re.compile("[\ud800-\udfff]")


def sns_message(alert: Alert) -> dict[str, Any]:
    """The keyword arguments of ``sns.publish`` for ``alert`` (without TopicArn).

    Always ``MessageStructure="json"`` with the payload's schema in every JSON protocol, and
    always at most :data:`SNS_MAX_BYTES` (UTF-8 bytes of message, subject and attributes). A
    message too big is shrunk deterministically, content only: first long strings and long lists
    in the payload's data (each cut string ends ``…[+N chars]``, each cut list ``xs`` gets a
    sibling ``xsOmitted: N``), then the body, by whole lines; ``payload["shrunk"]`` says how.
    """
    subject = safe_subject(alert.get("subject") or "")
    attributes = _message_attributes(alert.get("attributes") or {})
    text = alert.get("text") if isinstance(alert.get("text"), str) else ""
    payload = _plain(alert.get("payload"), text)
    kwargs = _publish_kwargs(subject, text, payload, attributes)
    original = _size(kwargs)
    if original <= SNS_MAX_BYTES:
        return kwargs
    shrunk: dict[str, Any] = payload
    for string_cap, list_cap in _DATA_LEVELS:
        shrunk = _shrink_payload(payload, string_cap, list_cap)
        shrunk["shrunk"] = _shrink_note(original, string_cap, list_cap, None)
        kwargs = _publish_kwargs(subject, text, shrunk, attributes)
        if _size(kwargs) <= SNS_MAX_BYTES:
            return kwargs
    for text_cap in _TEXT_LEVELS:
        cut = cut_text(text, text_cap)
        shrunk["text"] = cut
        shrunk["shrunk"] = _shrink_note(original, *_DATA_LEVELS[-1], text_cap)
        kwargs = _publish_kwargs(subject, cut, shrunk, attributes)
        if _size(kwargs) <= SNS_MAX_BYTES:
            return kwargs
    # Unreachable with the payloads built here; a guarantee for anything else stored or passed in.
    cut = cut_text(text, 512)
    minimal = {
        "schema": inline(payload.get("schema"), 64, PAYLOAD_SCHEMA),
        "subject": subject,
        "severity": inline(payload.get("severity"), 16),
        "checkedAt": inline(payload.get("checkedAt"), 40),
        "text": cut,
        "shrunk": {**_shrink_note(original, 0, 0, 512), "dropped": "every data field (too large)"},
    }
    return _publish_kwargs(subject, cut, minimal, attributes)


def _shrink_note(original: int, string_cap: int, list_cap: int, text_cap: int | None) -> dict[str, Any]:
    return {
        "reason": f"shortened to fit the SNS message limit of {SNS_MAX_BYTES} bytes",
        "originalBytes": original,
        "stringsCappedAt": string_cap,
        "listsCappedAt": list_cap,
        "textCappedAt": text_cap,
    }


def _plain(payload: object, text: str) -> dict[str, Any]:
    """A JSON-only copy of ``payload`` (odd values as strings), with a schema and text; never raises."""
    try:
        plain = json.loads(json.dumps(payload, default=str))
    except (TypeError, ValueError, RecursionError):
        plain = {"schema": PAYLOAD_SCHEMA, "text": text, "unserialisable": inline(repr(type(payload)), 100)}
    if not isinstance(plain, dict):
        plain = {"payload": plain}
    # A payload restored from storage may have lost them; every message carries a schema and the body.
    plain.setdefault("schema", PAYLOAD_SCHEMA)
    plain.setdefault("text", text)
    return plain


def _shrink_payload(payload: dict[str, Any], string_cap: int, list_cap: int) -> dict[str, Any]:
    return {
        key: value if key in _PROTECTED else _shrink(value, string_cap, list_cap)
        for key, value in _with_omitted(payload, list_cap).items()
    }


def _with_omitted(mapping: Mapping[str, Any], list_cap: int) -> dict[str, Any]:
    """``mapping`` plus ``<key>Omitted`` counts for each list about to be cut to ``list_cap``."""
    out = dict(mapping)
    for key, value in mapping.items():
        if isinstance(value, list) and len(value) > list_cap and key not in _PROTECTED:
            out[f"{key}Omitted"] = len(value) - list_cap
    return out


def _shrink(value: Any, string_cap: int, list_cap: int) -> Any:
    if isinstance(value, str):
        return (
            value if len(value) <= string_cap else f"{value[:string_cap]}…[+{len(value) - string_cap} chars]"
        )
    if isinstance(value, list):
        kept = [_shrink(item, string_cap, list_cap) for item in value[:list_cap]]
        for index, item in enumerate(value[:list_cap]):  # a list in a list has no sibling for a count
            if isinstance(item, list) and len(item) > list_cap:
                kept[index] = [*kept[index], f"… {len(item) - list_cap} more omitted"]
        return kept
    if isinstance(value, dict):
        return {
            key: _shrink(item, string_cap, list_cap) for key, item in _with_omitted(value, list_cap).items()
        }
    return value


def _dumps(value: Any) -> str:
    # ensure_ascii=False: a non-ASCII character costs its UTF-8 bytes, not a 6-12 byte escape per level.
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _utf8_safe(text: str) -> str:
    """Lone surrogates (from ``\\udXXX`` in some JSON input) as JSON escapes, so the text encodes as UTF-8.

    Used on JSON text only, where a surrogate can occur only inside a string literal.
    """
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _publish_kwargs(
    subject: str, text: str, payload: dict[str, Any], attributes: dict[str, dict[str, str]]
) -> dict[str, Any]:
    payload_json = _dumps(payload)
    per_protocol = {"default": text, **dict.fromkeys(JSON_PROTOCOLS, payload_json)}
    return {
        "Subject": subject,
        "Message": _utf8_safe(_dumps(per_protocol)),
        "MessageStructure": "json",
        "MessageAttributes": attributes,
    }


def _message_attributes(attributes: Mapping[str, object]) -> dict[str, dict[str, str]]:
    """String attributes for filter policies; a value with anything unsafe in it is shown escaped."""
    out: dict[str, dict[str, str]] = {}
    for name, value in attributes.items():
        text = inline(value, limit=250, empty="")
        if text:
            out[inline(name, limit=200)] = {"DataType": "String", "StringValue": text}
    return out


def _size(kwargs: Mapping[str, Any]) -> int:
    """SNS's measure: UTF-8 bytes of message, subject and every attribute's name, type and value."""
    total = len(str(kwargs["Message"]).encode("utf-8")) + len(str(kwargs.get("Subject", "")).encode("utf-8"))
    for name, attribute in kwargs.get("MessageAttributes", {}).items():
        total += (
            len(name.encode("utf-8")) + len(attribute["DataType"]) + len(attribute["StringValue"].encode())
        )
    return total


def publish(alert: Alert, topic_arn: str, region: str) -> str:
    """Publish ``alert``; returns the SNS MessageId. Raises on failure: the caller must not lose it."""
    sns = aws_clients.client("sns", region)
    response = sns.publish(TopicArn=topic_arn, **sns_message(alert))
    return str(response.get("MessageId", ""))
