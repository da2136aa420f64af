"""Has this principal done this before? Its CloudTrail history, read within a time budget.

The alert answers the response checklist's third question from CloudTrail ``LookupEvents``
(90 days of management events; 2 requests per second per account and region; pages of 50):

- has the principal called this API before (how often, when last)?
- has it made other watched S3 permission calls?
- has it used this source IP and this user agent before?
- is this its first activity in the account?

**Whose history.** ``LookupEvents`` filters on one attribute; ``Username`` matches the
record's user name: an IAM user's name, ``root``, or an assumed-role *session* name. Session
names are chosen by the caller, so for a session every event read is kept only when its
``userIdentity`` names the same role (``sessionIssuer.arn`` or the session ARN's role part):
another role's session called ``alice`` is not alice's history.

**Budget.** Pages are paced at 2 per second and read until the budget (default 5 s) would be
exceeded; a throttle or any failure ends the read. The client makes one attempt with short
timeouts (:data:`handlers.aws_clients.BUDGET_CONFIG`). The answer then says how far it got:
``partial`` with the days read, or ``not-checked`` with why. A partial read can prove
``seen-before`` but never ``first-time``: that verdict needs the whole window read.

**Cache.** What was read is summarised per principal in the idempotency table
(``actor#<account>#<sha256 of the ARN>``, TTL 15 minutes, under 10 KB: counts per event name,
hashed IPs and user agents, capped); the next alert about the same principal reads only newer
events. A cache that cannot be read or written only costs a full read.

Nothing here raises: every AWS answer and every record is read as untrusted.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers import aws_clients
from handlers.exposure import describe_error
from handlers.rules import WATCHED_EVENT_NAMES

WINDOW_DAYS = 90
PAGE_INTERVAL_SECONDS = 0.5  # LookupEvents: 2 requests per second per account and region
PAGE_COST_SECONDS = 0.5  # room kept for one more page before the budget runs out
PAGE_SIZE = 50
CACHE_SECONDS = 15 * 60
MAX_SEEN = 200  # hashed IPs and user agents remembered per principal
MAX_NAMES = 64  # distinct event names remembered per principal
MAX_RECORD_CHARS = 100_000  # a CloudTrailEvent longer than this is not parsed

_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,128}$")  # IAM user, role and session names
_ARN = re.compile(
    r"^arn:(aws|aws-cn|aws-us-gov):(iam|sts)::(\d{12}):"
    r"(root|user/(?:[A-Za-z0-9+=,.@_-]+/)*([A-Za-z0-9+=,.@_-]{1,64})"
    r"|assumed-role/([A-Za-z0-9+=,.@_-]{1,64})/([A-Za-z0-9+=,.@_-]{1,64}))$"
)
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


class Principal:
    """Who to look up: the ARN, the ``Username`` lookup value, and how to recognise its events."""

    def __init__(self, arn: str, username: str, role_arn: str | None) -> None:
        self.arn = arn
        self.username = username
        self.role_arn = role_arn  # assumed-role sessions: the role whose sessions count

    def owns(self, identity: object) -> bool:
        """Whether a record's ``userIdentity`` is this principal (for sessions: of the same role)."""
        if not isinstance(identity, Mapping):
            return False
        arn = identity.get("arn")
        if self.role_arn is None:
            return arn == self.arn
        context = identity.get("sessionContext")
        issuer = context.get("sessionIssuer") if isinstance(context, Mapping) else None
        if isinstance(issuer, Mapping) and issuer.get("arn") == self.role_arn:
            return True
        parsed = _ARN.fullmatch(arn) if isinstance(arn, str) else None
        return bool(parsed and parsed.group(6) and _role_arn(parsed) == self.role_arn)


def _role_arn(parsed: re.Match[str]) -> str:
    return f"arn:{parsed.group(1)}:iam::{parsed.group(3)}:role/{parsed.group(6)}"


def principal_of(actor: object) -> Principal | None:
    """The principal behind an actor ARN, or ``None`` when it is not one LookupEvents can name."""
    if not isinstance(actor, str) or len(actor) > 2048:
        return None
    parsed = _ARN.fullmatch(actor)
    if parsed is None:
        return None
    if parsed.group(4) == "root":
        return Principal(actor, "root", None)
    if parsed.group(6):  # assumed-role/<role>/<session>
        return Principal(actor, parsed.group(7), _role_arn(parsed))
    name = parsed.group(5)
    return Principal(actor, name, None) if name and _NAME.fullmatch(name) else None


def trusted_match(actor: object, globs: Sequence[str]) -> str | None:
    """The first glob of ``alerts.trusted_principals`` the actor (or its session's role) matches."""
    principal = principal_of(actor)
    if principal is None:
        return None
    names = [principal.arn] + ([principal.role_arn] if principal.role_arn else [])
    return next((g for g in globs if any(fnmatch.fnmatchcase(n, g) for n in names)), None)


# ---- what was read: a summary small enough to cache ----------------------------------------------


class Summary:
    """Counts per event name, hashed IPs and agents, and the span of time read."""

    def __init__(self, newest: datetime, oldest: datetime, complete: bool) -> None:
        self.names: dict[str, list[Any]] = {}  # name -> [count, last ISO time]
        self.ips: set[str] = set()
        self.agents: set[str] = set()
        self.events = 0
        self.first: str | None = None  # the earliest event of the principal read
        self.newest = newest  # read up to here (exclusive)
        self.oldest = oldest  # and back to here
        self.complete = complete  # the whole window back to ``oldest`` was read

    def add(self, record: Mapping[str, Any], when: datetime) -> None:
        name = record.get("eventName")
        stamp = _iso(when)
        if isinstance(name, str) and (name in self.names or len(self.names) < MAX_NAMES):
            entry = self.names.setdefault(name, [0, None])
            entry[0] += 1
            entry[1] = max(entry[1] or stamp, stamp)
        self.events += 1
        self.first = min(self.first or stamp, stamp)
        for values, field in ((self.ips, "sourceIPAddress"), (self.agents, "userAgent")):
            value = record.get(field)
            if isinstance(value, str) and len(values) < MAX_SEEN:
                values.add(_digest(value))

    def merge_older(self, cached: Summary) -> None:
        """Add a cached summary of an older span (this one holds what is newer)."""
        for name, (count, last) in cached.names.items():
            if name in self.names or len(self.names) < MAX_NAMES:
                entry = self.names.setdefault(name, [0, None])
                entry[0] += count
                entry[1] = max(entry[1] or last, last)
        self.ips |= set(list(cached.ips)[: max(0, MAX_SEEN - len(self.ips))])
        self.agents |= set(list(cached.agents)[: max(0, MAX_SEEN - len(self.agents))])
        self.events += cached.events
        if cached.first:
            self.first = min(self.first or cached.first, cached.first)
        self.oldest = cached.oldest
        self.complete = cached.complete

    def to_item(self) -> str:
        return json.dumps(
            {
                "names": self.names,
                "ips": sorted(self.ips),
                "agents": sorted(self.agents),
                "events": self.events,
                "first": self.first,
                "newest": _iso(self.newest),
                "oldest": _iso(self.oldest),
                "complete": self.complete,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_item(cls, text: object) -> Summary | None:
        """A cached summary, or ``None`` when the item is missing or not what we wrote."""
        try:
            data = json.loads(text) if isinstance(text, str) else None
            newest, oldest = _parse(data["newest"]), _parse(data["oldest"])
            if newest is None or oldest is None:
                return None
            summary = cls(newest, oldest, data["complete"] is True)
            for name, (count, last) in dict(data["names"]).items():
                if isinstance(name, str) and isinstance(count, int) and _parse(last):
                    summary.names[name] = [count, last]
            summary.ips = {v for v in data["ips"] if isinstance(v, str)}
            summary.agents = {v for v in data["agents"] if isinstance(v, str)}
            summary.events = int(data["events"])
            summary.first = data["first"] if _parse(data["first"]) else None
            return summary
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


# ---- the query --------------------------------------------------------------------------------------


def actor_history(
    finding: Mapping[str, Any],
    *,
    region: str,
    table: str | None,
    trusted_principals: Sequence[str] = (),
    budget_seconds: float = 5.0,
    now: datetime,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The ``actorHistory`` of the alert for ``finding``; never raises, never exceeds the budget."""
    started = clock()
    actor = finding.get("actor")
    trusted = trusted_match(actor, trusted_principals)
    principal = principal_of(actor)
    if principal is None:
        why = "no actor in the record" if not actor else "the actor is not an IAM user, role session or root"
        return _result("not-checked", why, None, trusted)
    end = _parse(finding.get("eventTime")) or now
    start = end - timedelta(days=WINDOW_DAYS)
    account = str(finding.get("account") or "")
    key = {"pk": {"S": f"actor#{account}#{_digest(principal.arn)}"}}
    cached, cache = _cache_read(table, region, key, now)
    if cached is not None and not cached.newest <= end:
        cached = None  # read up to a later event than this one: its counts would include the future
    since = cached.newest if cached is not None else start
    summary = Summary(end, since, complete=False)
    own_id = finding.get("eventID")
    pages, reason, complete = 0, None, False
    token: str | None = None
    last_page = -PAGE_INTERVAL_SECONDS
    client = aws_clients.client("cloudtrail", region, budgeted=True)
    while True:
        elapsed = clock() - started
        wait = max(0.0, last_page + PAGE_INTERVAL_SECONDS - elapsed)
        if elapsed + wait + PAGE_COST_SECONDS > budget_seconds:
            reason = f"time budget of {budget_seconds:g} s used"
            break
        if wait:
            sleep(wait)
        last_page = clock() - started
        params: dict[str, Any] = {
            "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": principal.username}],
            "StartTime": since,
            "EndTime": end,
            "MaxResults": PAGE_SIZE,
        }
        if token:
            params["NextToken"] = token
        try:
            page = client.lookup_events(**params)
        except Exception as exc:  # throttled, denied, timed out: the answer ends here
            failure = describe_error("cloudtrail:LookupEvents", exc)
            reason = f"LookupEvents failed: {_word(failure['error'])}"
            if pages == 0 and cached is None:
                return _result("not-checked", reason, principal, trusted)
            break
        pages += 1
        events = page.get("Events") if isinstance(page, Mapping) else None
        for event in events if isinstance(events, list) else []:
            _read_event(event, principal, own_id, end, summary)
        token = page.get("NextToken") if isinstance(page, Mapping) else None
        if not isinstance(token, str) or not token:
            complete = True
            break
    if complete:
        summary.oldest = since
    elif summary.first is not None:
        summary.oldest = _parse(summary.first) or since
    else:
        summary.oldest = end  # nothing read: the span read is empty
    if cached is not None and complete:
        summary.merge_older(cached)
    elif cached is None:
        summary.complete = complete and since <= start
    cache = _cache_write(table, region, key, summary, now, cache) if complete else cache
    return _answer(summary, finding, principal, trusted, reason, pages, cache, start, end)


def _read_event(event: object, principal: Principal, own_id: object, end: datetime, summary: Summary) -> None:
    """Add one LookupEvents entry when it is the principal's own, earlier call."""
    if not isinstance(event, Mapping):
        return
    raw = event.get("CloudTrailEvent")
    if not isinstance(raw, str) or len(raw) > MAX_RECORD_CHARS:
        return
    try:
        record = json.loads(raw)
    except ValueError:
        return
    if not isinstance(record, dict) or record.get("eventID") == own_id:
        return
    when = _parse(record.get("eventTime"))
    if when is None or when >= end or not principal.owns(record.get("userIdentity")):
        return
    summary.add(record, when)


def _answer(
    summary: Summary,
    finding: Mapping[str, Any],
    principal: Principal,
    trusted: str | None,
    reason: str | None,
    pages: int,
    cache: str,
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    name = finding.get("eventName")
    same = summary.names.get(name) if isinstance(name, str) else None
    others = {n: v for n, v in summary.names.items() if n != name and n in WATCHED_EVENT_NAMES}
    other_count = sum(v[0] for v in others.values())
    complete = summary.complete
    # A partial read can prove "seen before", never "first time".
    verdict = "seen-before" if same or other_count else "first-time" if complete else "unknown"

    def seen(value: object, hashes: set[str]) -> bool | None:
        if not isinstance(value, str):
            return None
        if _digest(value) in hashes:
            return True
        return False if complete else None

    days = max(0.0, (end - max(summary.oldest, start)).total_seconds() / 86400)
    result = _result("full" if complete else "partial", None if complete else reason, principal, trusted)
    top = sorted(others.items(), key=lambda item: (-item[1][0], item[0]))[:10]
    result.update(
        daysRead=round(WINDOW_DAYS if complete else days, 1),
        eventsRead=summary.events,
        pagesRead=pages,
        sameApi={"count": same[0] if same else 0, "last": same[1] if same else None},
        otherWatchedCalls={
            "count": other_count,
            "names": {n: v[0] for n, v in top},
            "last": max((v[1] for v in others.values()), default=None),
        },
        sourceIpSeen=seen(finding.get("sourceIPAddress"), summary.ips),
        userAgentSeen=seen(finding.get("userAgent"), summary.agents),
        firstActivity=(summary.events == 0) if complete else (False if summary.events else None),
        firstSeen=summary.first,
        verdict=verdict,
        cache=cache,
    )
    return result


def _result(
    checked: str, reason: str | None, principal: Principal | None, trusted: str | None
) -> dict[str, Any]:
    return {
        "checked": checked,
        "reason": reason,
        "principal": principal.arn if principal else None,
        "lookup": {"attribute": "Username", "value": principal.username} if principal else None,
        "daysRead": 0.0,
        "eventsRead": 0,
        "pagesRead": 0,
        "sameApi": {"count": 0, "last": None},
        "otherWatchedCalls": {"count": 0, "names": {}, "last": None},
        "sourceIpSeen": None,
        "userAgentSeen": None,
        "firstActivity": None,
        "firstSeen": None,
        "verdict": "unknown",
        "trusted": trusted is not None,
        "trustedMatch": trusted,
        "cache": "off",
    }


# ---- the cache ---------------------------------------------------------------------------------------


def _cache_read(
    table: str | None, region: str, key: dict[str, Any], now: datetime
) -> tuple[Summary | None, str]:
    if not table:
        return None, "off"
    try:
        item = aws_clients.client("dynamodb", region, budgeted=True).get_item(
            TableName=table, Key=key, ConsistentRead=True
        )
    except Exception:  # a cache we cannot read costs a full read, nothing more
        return None, "unavailable"
    stored = item.get("Item") if isinstance(item, Mapping) else None
    if not isinstance(stored, Mapping):
        return None, "miss"
    expires = stored.get("expires_at", {}).get("N") if isinstance(stored.get("expires_at"), Mapping) else None
    if not isinstance(expires, str) or not expires.isdigit() or int(expires) < now.timestamp():
        return None, "miss"  # DynamoDB deletes expired items late: treat them as gone
    summary = Summary.from_item((stored.get("summary") or {}).get("S"))
    return (summary, "hit") if summary is not None else (None, "miss")


def _cache_write(
    table: str | None, region: str, key: dict[str, Any], summary: Summary, now: datetime, state: str
) -> str:
    if not table or state == "unavailable":
        return state
    try:
        aws_clients.client("dynamodb", region, budgeted=True).put_item(
            TableName=table,
            Item={
                **key,
                "summary": {"S": summary.to_item()},
                "expires_at": {"N": str(int(now.timestamp()) + CACHE_SECONDS)},
            },
        )
    except Exception:
        return "unavailable"
    return state


# ---- the alert's lines ---------------------------------------------------------------------------------


def history_lines(history: Mapping[str, Any]) -> list[str]:
    """The alert's lines for the history (no header); only our own words, numbers and watched names."""
    lines: list[str] = []
    if history.get("trusted"):
        lines.append(f"Change by trusted automation (matches {_word(history.get('trustedMatch'), 200)})")
    checked = history.get("checked")
    if checked == "not-checked":
        return [*lines, f"History not checked: {_word(history.get('reason'), 200)}"]
    days = _number(history.get("daysRead"))
    span = f"{days:g} days"
    same = history.get("sameApi") if isinstance(history.get("sameApi"), Mapping) else {}
    count = _number(same.get("count"))
    if count:
        lines.append(f"Called this API before: {count:g} times in {span}, last {_word(same.get('last'))}")
    else:
        lines.append(f"Called this API before: never in {span} read")
    others = history.get("otherWatchedCalls") if isinstance(history.get("otherWatchedCalls"), Mapping) else {}
    names = others.get("names") if isinstance(others.get("names"), Mapping) else {}
    listed = ", ".join(f"{n} {_number(c):g}" for n, c in names.items() if n in WATCHED_EVENT_NAMES)
    lines.append(
        f"Other watched S3 permission calls: {_number(others.get('count')):g}"
        + (f" ({listed})" if listed else "")
    )
    for label, field in (("Source IP", "sourceIpSeen"), ("User agent", "userAgentSeen")):
        lines.append(f"{label} seen before: {_yes_no(history.get(field))}")
    first = _yes_no(history.get("firstActivity"))
    seen_since = f" (first seen {_word(history.get('firstSeen'))})" if history.get("firstSeen") else ""
    lines.append(f"First activity in this account: {first}{seen_since}")
    verdict = history.get("verdict")
    words = {
        "first-time": "FIRST-TIME: no earlier call of this or any watched S3 permission API; "
        "possibly a compromised principal",
        "seen-before": "seen before: this principal has made such changes",
        "unknown": "unknown: the history could not be read in full",
    }
    lines.append(f"Verdict: {words.get(str(verdict), 'unknown')}")
    if checked == "partial":
        lines.append(f"History partial: {days:g} days read ({_word(history.get('reason'), 200)})")
    return lines


def _yes_no(value: object) -> str:
    return "yes" if value is True else "no" if value is False else "unknown"


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _word(value: object, limit: int = 40) -> str:
    """Our own short text (a time, a reason, an operator's glob): printable ASCII only, capped."""
    text = "".join(
        c if " " <= c <= "~" and c not in "<>@`" else "?" for c in str(value if value is not None else "-")
    )
    return text[:limit]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: object) -> datetime | None:
    """A CloudTrail time (``2026-11-02T09:14:23Z``) as an aware datetime; anything else is None."""
    if not isinstance(value, str) or not _STAMP.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
