"""Has this principal done this before? Its CloudTrail history, read within a time budget.

The alert answers the response checklist's "who, and have they done this before" from CloudTrail
``LookupEvents`` (90 days of management events of one region; 2 requests per second per account
and region; pages of at most 50):

- has the principal called this API before (how often, when last)?
- has it made other watched S3 permission calls (:data:`handlers.detection.rules.WATCHED_EVENT_NAMES`)?
- has it used this source IP and this user agent before?
- is this its first activity in the account?

**Whose history.** ``LookupEvents`` filters on exactly one attribute, and none of them is a
principal ARN. ``Username`` matches what CloudTrail shows as the event's user name: an IAM
user's ``userName``, ``root`` for the root user, and for an assumed role the *session name*, not
the role (the AWS CLI's ``lookup-events`` example shows ``"Username": "my-session-name"`` for
``assumed-role/my-role/my-session-name``; the API reference's ``NextToken`` example looks up
``Username`` ``root``). So we query by that name (taken from the actor ARN by
:func:`handlers.response.alert.actor_username`) and keep an event only when its ``CloudTrailEvent``
names the same principal: the same ARN for users and root; for sessions, the same role
(``userIdentity.arn`` as ``assumed-role/<role>/...`` or ``sessionIssuer.arn``), because session
names are chosen by the caller and another role's session called ``alice`` is not alice's
history. Limits: roles whose session names change every run (CI run ids) always look new; the
history is that of the region read (global services log to us-east-1).

**Budget.** Pages start at least 0.5 s apart (2 per second) and a page starts only when the
budget has room for it (the slowest page so far, at least 0.5 s); the client makes one attempt
with short timeouts (:data:`handlers.response.aws_clients.BUDGET_CONFIG`), so a throttle or any failure
ends the read instead of retrying. The answer says how far it got: ``partial`` with the days read,
or ``not-checked`` when not even one page came. A partial read can prove ``seen-before``
(something was found) but never ``first-time`` (what was not read may hold the call): that
verdict, ``firstActivity`` and "IP/agent not seen" need the whole window read, with no entry
left unreadable (one that is not JSON or has no time might have been the call). The window is
the 90 days before the event itself, which excludes the event (by ``eventID`` and by time).

**Cache.** What was read is summarised per principal in the idempotency table (see
:func:`cache_key`; TTL 15 minutes from the full read, under 8 KB): counts and last times of
watched calls, hashed IPs and user agents (capped), the span covered. The next alert about the
same principal reads only the events newer than the span. Only a complete read, or a partial one
that proved ``seen-before``, is cached. A cache that cannot be read or written costs a full read.

Nothing here raises: every AWS answer and every record is read as untrusted.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers.detection.rules import WATCHED_EVENT_NAMES
from handlers.detection.safe_text import checked_arn
from handlers.detection.timestamps import utc_text
from handlers.response import aws_clients
from handlers.response.alert import actor_username
from handlers.response.exposure import describe_error

WINDOW = timedelta(days=90)  # what LookupEvents keeps
WINDOW_DAYS = 90
PAGE_INTERVAL_SECONDS = 0.5  # LookupEvents: 2 requests per second per account and region
PAGE_COST_SECONDS = 0.5  # least time kept for one more page before the budget runs out
CACHE_WRITE_SECONDS = 0.2  # time kept for the cache write
PAGE_SIZE = 50
CACHE_SECONDS = 15 * 60
MAX_SEEN = 100  # hashed IPs and user agents remembered per principal
MAX_ITEM_CHARS = 8_000  # the cached summary; DynamoDB allows 400 KB, we want small reads
MAX_RECORD_CHARS = 300_000  # a CloudTrailEvent longer than this is not parsed
MAX_EVENT_IDS = 10_000  # events remembered to skip a repeat across pages
THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})

_NAME = r"[A-Za-z0-9+=,.@_-]{1,64}"
_SESSION = re.compile(rf"arn:(aws[a-z-]*):sts::(\d{{12}}):assumed-role/({_NAME})/({_NAME})", re.ASCII)
_ROLE = re.compile(rf"arn:(aws[a-z-]*):iam::(\d{{12}}):role/(?:[!-.0-~]+/)*({_NAME})", re.ASCII)
_USER = re.compile(rf"arn:(aws[a-z-]*):iam::(\d{{12}}):user/(?:[!-.0-~]+/)*({_NAME})", re.ASCII)
_ROOT = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):root", re.ASCII)
_API_NAME = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
_ERROR_CODE = re.compile(r"[A-Za-z0-9.]{1,64}", re.ASCII)
_SAFE_TEXT = re.compile(r"[^A-Za-z0-9 .,:;()_/*?=+\[\]-]")  # what our own lines may carry


# ---- the principal ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Who to look up: the ARN, the ``Username`` lookup value, and how to recognise its events."""

    arn: str
    username: str
    account: str
    role_arn: str | None = None  # sessions: arn:<partition>:iam::<account>:role/<name> (no path)

    def owns(self, identity: object) -> bool:
        """Whether a record's ``userIdentity`` is this principal (for a session: the same role)."""
        if not isinstance(identity, Mapping):
            return False
        arn = identity.get("arn")
        if self.role_arn is None:
            return isinstance(arn, str) and arn == self.arn
        context = identity.get("sessionContext")
        issuer = context.get("sessionIssuer") if isinstance(context, Mapping) else None
        issuer_arn = issuer.get("arn") if isinstance(issuer, Mapping) else None
        return self.role_arn in (role_of(arn), role_of(issuer_arn))


def role_of(arn: object) -> str | None:
    """The role ARN without its path, from a session ARN or a role ARN (a path is not in a session's ARN)."""
    if not isinstance(arn, str) or len(arn) > 2048:
        return None
    parsed = _SESSION.fullmatch(arn) or _ROLE.fullmatch(arn)
    return f"arn:{parsed.group(1)}:iam::{parsed.group(2)}:role/{parsed.group(3)}" if parsed else None


def principal_of(actor: object) -> Principal | None:
    """The principal behind an actor ARN, or ``None`` when it is not one LookupEvents can name.

    Only an IAM user, root, or an assumed-role session with a valid IAM name qualifies; the name
    is :func:`handlers.response.alert.actor_username`'s (so it is never sent to AWS unchecked).
    """
    arn = checked_arn(actor)
    name = actor_username(arn) if arn else None
    if arn is None or name is None:
        return None
    if session := _SESSION.fullmatch(arn):
        if session.group(4) != name:
            return None
        return Principal(arn, name, session.group(2), role_of(arn))
    if (user := _USER.fullmatch(arn)) and user.group(3) == name:
        return Principal(arn, name, user.group(2))
    if (root := _ROOT.fullmatch(arn)) and name == "root":
        return Principal(arn, name, root.group(2))
    return None


def _not_looked_up(actor: object) -> str:
    """Why an actor is not looked up (our words only: the actor is shown elsewhere, escaped)."""
    if actor is None or actor == "":
        return "no actor in the record"
    text = actor if isinstance(actor, str) else ""
    if text.endswith(".amazonaws.com") or text in ("AWSService", "AWSAccount"):
        return "the caller is an AWS service or another account, not a principal of this account"
    if "anonymous" in text.lower():
        return "the caller is anonymous"
    if checked_arn(text) is None:
        return "the actor is not a valid ARN"
    if ":federated-user/" in text:
        return "federated-user sessions are not looked up"
    return "the actor is not an IAM user, role session or root with a valid IAM name"


def trusted_match(actor: object, globs: Sequence[object], issuer: object = None) -> str | None:
    """The first trusted-principal glob the actor matches: its ARN, its session's role, or that role
    with its path (``issuer``: the record's ``sessionIssuer`` ARN, used only if it is the same role).
    """
    arn = checked_arn(actor)
    if arn is None:
        return None
    names = [arn]
    role = role_of(arn) if _SESSION.fullmatch(arn) else None
    if role:
        names.append(role)
        if isinstance(issuer, str) and checked_arn(issuer) and role_of(issuer) == role:
            names.append(issuer)
    for glob in globs if isinstance(globs, list | tuple | set | frozenset) else ():
        if isinstance(glob, str) and len(glob) <= 2048 and any(fnmatch.fnmatchcase(n, glob) for n in names):
            return glob
    return None


# ---- what was read: a summary small enough to cache -------------------------------------------------


@dataclass
class Summary:
    """What was read of a principal's history: watched calls, hashed IPs and agents, the span covered."""

    newest: datetime  # covered up to here (exclusive)
    oldest: datetime  # and back to here
    complete: bool = False  # the span reaches the window's start and every event in it was read
    reason: str | None = None  # why it is not complete
    names: dict[str, list[Any]] = field(default_factory=dict)  # event name -> [count, last ISO time]
    ips: set[str] = field(default_factory=set)
    ips_full: bool = False  # the cap was hit: a miss proves nothing
    agents: set[str] = field(default_factory=set)
    agents_full: bool = False
    events: int = 0  # the principal's events read
    first: str | None = None  # its earliest event read
    born: int = 0  # epoch seconds of the full read this summary grew from (the cache's TTL anchor)

    def add(self, record: Mapping[str, Any], when: datetime, own_name: str | None) -> None:
        """Count one earlier event of the principal."""
        stamp = _iso(when)
        name = record.get("eventName")
        if isinstance(name, str) and (name in WATCHED_EVENT_NAMES or name == own_name):
            entry = self.names.setdefault(name, [0, stamp])
            entry[0] += 1
            entry[1] = max(entry[1], stamp)
        self.events += 1
        self.first = min(self.first or stamp, stamp)
        self.ips_full = _remember(self.ips, record.get("sourceIPAddress")) or self.ips_full
        self.agents_full = _remember(self.agents, record.get("userAgent")) or self.agents_full

    def merge_older(self, cached: Summary) -> None:
        """Add a cached summary of the span just before this one."""
        for name, (count, last) in cached.names.items():
            entry = self.names.setdefault(name, [0, last])
            entry[0] += count
            entry[1] = max(entry[1], last)
        for flag in ("ips", "agents"):
            mine, missing = getattr(self, flag), sorted(getattr(cached, flag) - getattr(self, flag))
            room = max(0, MAX_SEEN - len(mine))
            mine.update(missing[:room])
            full = getattr(self, f"{flag}_full") or getattr(cached, f"{flag}_full") or len(missing) > room
            setattr(self, f"{flag}_full", full)
        self.events += cached.events
        if cached.first:
            self.first = min(self.first or cached.first, cached.first)
        self.oldest, self.born = cached.oldest, cached.born

    def to_item(self) -> str:
        """The compact JSON stored in the cache item, cut to :data:`MAX_ITEM_CHARS`."""
        while True:
            text = json.dumps(
                {
                    "v": 1,
                    "newest": _iso(self.newest),
                    "oldest": _iso(self.oldest),
                    "complete": self.complete,
                    "reason": self.reason,
                    "names": self.names,
                    "ips": sorted(self.ips),
                    "ipsFull": self.ips_full,
                    "agents": sorted(self.agents),
                    "agentsFull": self.agents_full,
                    "events": self.events,
                    "first": self.first,
                    "born": self.born,
                },
                separators=(",", ":"),
            )
            if len(text) <= MAX_ITEM_CHARS or not (self.ips or self.agents):
                return text
            # Too big (cannot happen with today's caps): forget hashes, never counts.
            for values, full in ((self.ips, "ips_full"), (self.agents, "agents_full")):
                for value in sorted(values)[len(values) // 2 :]:
                    values.discard(value)
                setattr(self, full, True)

    @classmethod
    def from_item(cls, text: object) -> Summary | None:
        """A cached summary, or ``None`` when the item is not one we wrote."""
        try:
            data: Any = json.loads(text) if isinstance(text, str) and len(text) <= MAX_ITEM_CHARS else {}
            newest, oldest = _stamped(data["newest"]), _stamped(data["oldest"])
            if data["v"] != 1 or newest is None or oldest is None or oldest > newest:
                return None
            reason = data["reason"]
            summary = cls(
                newest,
                oldest,
                complete=data["complete"] is True,
                reason=_safe(reason, 80) if isinstance(reason, str) else None,
                ips={v for v in data["ips"] if isinstance(v, str)},
                ips_full=data["ipsFull"] is True,
                agents={v for v in data["agents"] if isinstance(v, str)},
                agents_full=data["agentsFull"] is True,
                events=max(0, int(data["events"])),
                first=data["first"] if _stamped(data["first"]) else None,
                born=int(data["born"]),
            )
            for name, (count, last) in dict(data["names"]).items():
                if _API_NAME.fullmatch(str(name)) and isinstance(count, int) and count > 0 and _stamped(last):
                    summary.names[name] = [count, last]
            return summary
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def _remember(values: set[str], value: object) -> bool:
    """Add ``value``'s hash; True when it could not be added (the set is full)."""
    if not isinstance(value, str) or not value:
        return False
    digest = _digest(value)
    if digest in values:
        return False
    if len(values) >= MAX_SEEN:
        return True
    values.add(digest)
    return False


# ---- the budget -------------------------------------------------------------------------------------


class _Budget:
    """Time left for the history, measured with ``clock``; pages paced at 2 per second with ``sleep``."""

    def __init__(self, seconds: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self.seconds, self.clock, self.sleep = seconds, clock, sleep
        self.started = clock()
        self.page_started: float | None = None
        self.slowest = PAGE_COST_SECONDS

    def elapsed(self) -> float:
        return self.clock() - self.started

    def start_page(self) -> bool:
        """Wait for the pace and return True when one more page fits the budget; else False at once."""
        now = self.elapsed()
        wait = 0.0 if self.page_started is None else max(0.0, self.page_started + PAGE_INTERVAL_SECONDS - now)
        if now + wait + self.slowest > self.seconds:
            return False
        if wait > 0:
            self.sleep(wait)
        self.page_started = self.elapsed()
        return True

    def end_page(self) -> None:
        if self.page_started is not None:
            self.slowest = max(self.slowest, self.elapsed() - self.page_started)

    def has(self, seconds: float) -> bool:
        return self.elapsed() + seconds <= self.seconds


# ---- the query ----------------------------------------------------------------------------------------


@dataclass
class _Read:
    """One paginated read of [since, until], newest first."""

    pages: int = 0
    reached: datetime | None = None  # the oldest event time on the pages read
    done: bool = False  # the last page came (no NextToken)
    stop: str | None = None  # why it ended early (our words)
    unreadable: int = 0  # entries that could not be read (they might have been the principal's)


@dataclass
class _Query:
    """What one history needs to read pages: the principal, the finding's own event, the client."""

    client: Any
    principal: Principal
    own_id: object
    own_name: str | None
    end: datetime
    budget: _Budget
    seen_ids: set[str] = field(default_factory=set)


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
    """The ``actorHistory`` of the alert for ``finding`` (see the module docstring for the fields).

    ``table``: the idempotency table holding the per-principal cache (None: no cache).
    ``trusted_principals``: ARN globs reported as trusted automation (context only).
    Never raises, and never starts an AWS call the remaining ``budget_seconds`` has no room for.
    """
    trusted: str | None = None
    try:
        session = finding.get("session")
        issuer = session.get("sessionIssuer") if isinstance(session, Mapping) else None
        trusted = trusted_match(finding.get("actor"), trusted_principals, issuer)
        return _history(finding, region, table, trusted, budget_seconds, now, clock, sleep)
    except Exception as exc:  # never raise: the alert must go out, history or not
        return _result("not-checked", f"internal error ({_code(type(exc).__name__)})", None, trusted)


def _history(
    finding: Mapping[str, Any],
    region: str,
    table: str | None,
    trusted: str | None,
    budget_seconds: float,
    now: datetime,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    budget = _Budget(float(budget_seconds), clock, sleep)
    principal = principal_of(finding.get("actor"))
    if principal is None:
        return _result("not-checked", _not_looked_up(finding.get("actor")), None, trusted)
    now = _aware(now)
    # The 90 days before the event itself. (LookupEvents keeps 90 days before *now*: a late event
    # loses its delay's worth of day 90, minutes in the Lambda; not worth an "unknown".)
    end = min(_parse_time(finding.get("eventTime")) or now, now)
    start = end - WINDOW
    key = cache_key(finding.get("account"), principal)
    cached, cache, writable = _cache_read(table, region, key, now, start, end)
    name = finding.get("eventName")
    own_name = name if isinstance(name, str) and _API_NAME.fullmatch(name) else None
    query = _Query(
        aws_clients.client("cloudtrail", region, budgeted=True),
        principal,
        finding.get("eventID"),
        own_name,
        end,
        budget,
    )
    since = cached.newest if cached is not None else start
    summary = Summary(end, end, born=int(now.timestamp()))
    read = _read_pages(query, since, summary)
    if read.pages == 0 and cached is None:
        return _result("not-checked", read.stop, principal, trusted, cache)
    summary.oldest = since if read.done else max(since, read.reached or end)
    days = (end - max(summary.oldest, start)).total_seconds()
    reason = read.stop or (f"{read.unreadable} events unreadable" if read.unreadable else None)
    if cached is not None:
        days += (cached.newest - max(cached.oldest, start)).total_seconds()
        summary.merge_older(cached)
        summary.complete = cached.complete and read.done and not read.unreadable
        summary.reason = reason or cached.reason
        writable = writable and read.done  # a gap left unread would make the span a lie
    else:
        summary.complete = read.done and not read.unreadable
        summary.reason = reason
    answer = _answer(summary, finding, principal, trusted, read.pages, days, own_name)
    if writable and (summary.complete or answer["verdict"] == "seen-before"):
        cache = _cache_write(table, region, key, summary, budget, cache)
    answer["cache"] = cache
    return answer


def _read_pages(query: _Query, since: datetime, summary: Summary) -> _Read:
    """Read LookupEvents pages of the principal's user name from ``query.end`` back to ``since``."""
    read = _Read()
    token: str | None = None
    while True:
        if not query.budget.start_page():
            read.stop = f"time budget of {query.budget.seconds:g} s used"
            return read
        params: dict[str, Any] = {
            "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": query.principal.username}],
            "StartTime": since,
            "EndTime": query.end,
            "MaxResults": PAGE_SIZE,
        }
        if token:
            params["NextToken"] = token
        try:
            page = query.client.lookup_events(**params)
        except Exception as exc:  # throttled, denied, timed out: the read ends here
            code = _code(describe_error("cloudtrail:LookupEvents", exc)["error"])
            read.stop = (
                "throttled" if read.pages and code in THROTTLE_CODES else f"LookupEvents failed: {code}"
            )
            return read
        finally:
            query.budget.end_page()
        events = page.get("Events") if isinstance(page, Mapping) else None
        token = page.get("NextToken") if isinstance(page, Mapping) else None
        if not isinstance(events, list) or (token is not None and not isinstance(token, str)):
            read.stop = "LookupEvents answer malformed"
            return read
        read.pages += 1
        for event in events:
            when = _read_event(event, query, since, summary)
            if when is None:
                read.unreadable += 1
            else:
                read.reached = min(read.reached or when, when)
        if not token:
            read.done = True
            return read


def _read_event(event: object, query: _Query, since: datetime, summary: Summary) -> datetime | None:
    """Count one entry if it is the principal's own earlier call; its time, or None if unreadable."""
    if not isinstance(event, Mapping):
        return None
    raw = event.get("CloudTrailEvent")
    if not isinstance(raw, str) or len(raw) > MAX_RECORD_CHARS:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    when = _parse_time(record.get("eventTime")) or _parse_time(event.get("EventTime"))
    if when is None:
        return None
    event_id = record.get("eventID") or event.get("EventId")
    if event_id == query.own_id or when >= query.end or when < since:
        return when  # the alerted call itself, or outside the span (a confused answer)
    if isinstance(event_id, str):
        if event_id in query.seen_ids:
            return when  # the same event on two pages counts once
        if len(query.seen_ids) < MAX_EVENT_IDS:
            query.seen_ids.add(event_id)
    if query.principal.owns(record.get("userIdentity")):
        summary.add(record, when, query.own_name)
    return when


def _answer(
    summary: Summary,
    finding: Mapping[str, Any],
    principal: Principal,
    trusted: str | None,
    pages: int,
    seconds_read: float,
    own_name: str | None,
) -> dict[str, Any]:
    same = summary.names.get(own_name) if own_name else None
    others = {n: v for n, v in summary.names.items() if n != own_name and n in WATCHED_EVENT_NAMES}
    other_count = sum(v[0] for v in others.values())
    complete = summary.complete
    # A partial read can prove "seen before" (it found something), never "first time".
    verdict = "seen-before" if same or other_count else "first-time" if complete else "unknown"

    def seen(value: object, hashes: set[str], full: bool) -> bool | None:
        if not isinstance(value, str) or not value:
            return None
        if _digest(value) in hashes:
            return True
        return False if complete and not full else None

    top = sorted(others.items(), key=lambda item: (-item[1][0], item[0]))[:10]
    result = _result(
        "full" if complete else "partial", None if complete else summary.reason, principal, trusted
    )
    result.update(
        daysRead=float(WINDOW_DAYS)
        if complete
        else round(min(WINDOW_DAYS, max(0.0, seconds_read / 86400)), 1),
        eventsRead=summary.events,
        pagesRead=pages,
        sameApi={"eventName": own_name, "count": same[0] if same else 0, "last": same[1] if same else None},
        otherWatchedCalls={
            "count": other_count,
            "names": {n: v[0] for n, v in top},
            "last": max((v[1] for v in others.values()), default=None),
        },
        sourceIpSeen=seen(finding.get("sourceIPAddress"), summary.ips, summary.ips_full),
        userAgentSeen=seen(finding.get("userAgent"), summary.agents, summary.agents_full),
        firstActivity=(summary.events == 0) if complete else (False if summary.events else None),
        firstSeen=summary.first,
        verdict=verdict,
    )
    return result


def _result(
    checked: str,
    reason: str | None,
    principal: Principal | None,
    trusted: str | None,
    cache: str = "off",
) -> dict[str, Any]:
    return {
        "checked": checked,
        "reason": reason,
        "principal": principal.arn if principal else None,
        "lookup": {"attribute": "Username", "value": principal.username} if principal else None,
        "daysRead": 0.0,
        "eventsRead": 0,
        "pagesRead": 0,
        "sameApi": {"eventName": None, "count": 0, "last": None},
        "otherWatchedCalls": {"count": 0, "names": {}, "last": None},
        "sourceIpSeen": None,
        "userAgentSeen": None,
        "firstActivity": None,
        "firstSeen": None,
        "verdict": "unknown",
        "trusted": trusted is not None,
        "trustedMatch": trusted,
        "cache": cache,
    }


# ---- the cache -------------------------------------------------------------------------------------------


def cache_key(account: object, principal: Principal) -> dict[str, Any]:
    """The cache item's key: ``actor#<account>#<sha256 of the principal ARN, hex>`` (no name in clear)."""
    owner = account if isinstance(account, str) and re.fullmatch(r"\d{12}", account) else principal.account
    return {"pk": {"S": f"actor#{owner}#{hashlib.sha256(principal.arn.encode()).hexdigest()}"}}


def _cache_read(
    table: str | None, region: str, key: dict[str, Any], now: datetime, start: datetime, end: datetime
) -> tuple[Summary | None, str, bool]:
    """The cached summary (if usable), the cache state, and whether a new summary may be written."""
    if not table:
        return None, "off", False
    try:
        answer = aws_clients.client("dynamodb", region, budgeted=True).get_item(
            TableName=table, Key=key, ConsistentRead=True
        )
    except Exception:  # a cache we cannot read costs a full read, nothing more
        return None, "unavailable", False
    item = answer.get("Item") if isinstance(answer, Mapping) else None
    if not isinstance(item, Mapping):
        return None, "miss", True
    expires = _attribute(item, "expires_at", "N")
    if expires is None or not expires.isdigit() or int(expires) <= now.timestamp():
        return None, "miss", True  # DynamoDB deletes expired items late: treat them as gone
    summary = Summary.from_item(_attribute(item, "summary", "S"))
    if summary is None:
        return None, "miss", True
    if summary.newest > end:
        return None, "miss", False  # read up to a later event: its counts hold this one's future
    if summary.newest < start:
        return None, "miss", True
    return summary, "hit", True


def _cache_write(
    table: str | None, region: str, key: dict[str, Any], summary: Summary, budget: _Budget, state: str
) -> str:
    if not table or not budget.has(CACHE_WRITE_SECONDS):
        return state
    try:
        aws_clients.client("dynamodb", region, budgeted=True).put_item(
            TableName=table,
            Item={
                **key,
                "kind": {"S": "actor-history"},
                "summary": {"S": summary.to_item()},
                "expires_at": {"N": str(summary.born + CACHE_SECONDS)},
            },
        )
    except Exception:
        return "unavailable"
    return state


def _attribute(item: Mapping[str, Any], name: str, kind: str) -> str | None:
    value = item.get(name)
    found = value.get(kind) if isinstance(value, Mapping) else None
    return found if isinstance(found, str) else None


# ---- the alert's lines -----------------------------------------------------------------------------------


_VERDICT_WORDS = {
    "first-time": "FIRST-TIME: no earlier call of this or any watched S3 permission API in 90 days; "
    "treat the principal as possibly compromised",
    "seen-before": "SEEN-BEFORE: this principal has made such calls before",
    "unknown": "UNKNOWN: the history could not be read in full",
}


def history_lines(history: Mapping[str, Any]) -> list[str]:
    """The alert's lines for "WHO, AND HAVE THEY DONE THIS BEFORE" (no header), in ASCII.

    Only our own words, numbers, times we format, event names of our own watched list and the
    operator's trusted glob are printed: nothing the caller chose (the actor is shown elsewhere).
    """
    lines: list[str] = []
    if history.get("trusted") is True:
        lines.append(f"Change by trusted automation (matches {_safe(history.get('trustedMatch'), 200)})")
    checked = history.get("checked")
    if checked not in ("full", "partial"):
        return [*lines, f"History not checked: {_safe(history.get('reason'), 120)}"]
    days = _count(history.get("daysRead"), decimals=True)
    same = _mapping(history.get("sameApi"))
    name = same.get("eventName") if same.get("eventName") in WATCHED_EVENT_NAMES else None
    what = str(name) if name else "this API"
    times = _count(same.get("count"))
    if times != "0":
        lines.append(f"Called {what} before: {_times(times)} in {days} days, last {_when(same.get('last'))}")
    else:
        lines.append(f"Called {what} before: never in the {days} days read")
    others = _mapping(history.get("otherWatchedCalls"))
    listed = ", ".join(
        f"{n} {_count(c)}" for n, c in _mapping(others.get("names")).items() if n in WATCHED_EVENT_NAMES
    )
    last = f", last {_when(others.get('last'))}" if _stamped(others.get("last")) else ""
    lines.append(
        f"Other watched S3 permission calls: {_count(others.get('count'))}"
        + (f" ({listed})" if listed else "")
        + last
    )
    lines.append(f"Source IP seen before: {_yes_no(history.get('sourceIpSeen'))}")
    lines.append(f"User agent seen before: {_yes_no(history.get('userAgentSeen'))}")
    since = (
        f" (earliest event read {_when(history.get('firstSeen'))})"
        if _stamped(history.get("firstSeen"))
        else ""
    )
    lines.append(f"First activity in this account: {_yes_no(history.get('firstActivity'))}{since}")
    lines.append(f"Verdict: {_VERDICT_WORDS.get(str(history.get('verdict')), _VERDICT_WORDS['unknown'])}")
    if checked == "partial":
        lines.append(f"History partial: {days} days read ({_safe(history.get('reason'), 120)})")
    return lines


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _yes_no(value: object) -> str:
    return "yes" if value is True else "no" if value is False else "unknown"


def _count(value: object, decimals: bool = False) -> str:
    """A non-negative number as text (``daysRead`` keeps one decimal); anything else is 0."""
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else 0
    number = max(0.0, min(float(number), 1e9)) if number == number else 0.0  # NaN is 0
    return f"{number:.1f}".removesuffix(".0") if decimals else str(int(number))


def _times(count: str) -> str:
    return "1 time" if count == "1" else f"{count} times"


def _when(value: object) -> str:
    return value if isinstance(value, str) and _stamped(value) else "unknown"


def _safe(value: object, limit: int) -> str:
    """Our own short text (a reason, an operator's glob): a narrow ASCII alphabet, capped."""
    return _SAFE_TEXT.sub("?", str(value if value is not None else "-")[:limit])


# ---- small helpers ---------------------------------------------------------------------------------------


def _code(value: object) -> str:
    """An AWS error code or exception name, if it looks like one."""
    text = str(value)
    return text if _ERROR_CODE.fullmatch(text) else "error"


def _digest(value: str) -> str:
    """A short hash: the cache holds no raw IPs or user agents."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _aware(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _iso(when: datetime) -> str:
    return utc_text(when)


def _parse_time(value: object) -> datetime | None:
    """A CloudTrail time (``2026-11-02T09:14:23Z``, or a datetime botocore parsed) as aware UTC; else None."""
    if isinstance(value, datetime):
        return _aware(value)
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _stamped(value: object) -> datetime | None:
    """One of our own ISO times (``_iso``); anything else is None."""
    return _parse_time(value) if isinstance(value, str) and _STAMP.fullmatch(value) else None
