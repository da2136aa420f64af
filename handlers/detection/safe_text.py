"""Untrusted text, made safe to show: the one gate between attacker-settable strings and an alert.

Whoever exposes a bucket also writes much of what the alert quotes: object keys, user agents,
policy text, tag values, principal strings and, when the detector is invoked directly, every
field of the event. This module turns such values into text that cannot

- forge lines or sections (control characters, newlines, Unicode line/paragraph separators,
  bidi overrides and zero-width characters are escaped visibly: ``\\n``, ``\\x1b``, ``\\u2028``);
- page a channel or disguise a link in a chat relay (``<!channel>``, ``<!here>``, ``@everyone``,
  ``<https://evil|AWS console>``, ``[label](url)``; bare ``scheme://`` is defanged);
- grow without bound (every value is capped, with a visible ``…[+N chars]`` marker);

and checks identifiers (region, account, ARN, bucket, access point, event id) against AWS's
patterns before they go into a link or a command. Every function here is total: it never
raises, whatever it is given.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Callable, Sequence
from urllib.parse import quote

DEFAULT_LIMIT = 300
CONSOLE_DOMAIN = ".console.aws.amazon.com"
S3_CONSOLE_HOST = "s3.console.aws.amazon.com"

# Visible stand-ins: look like the original to a reader, are not syntax to Slack, Teams,
# Discord, Mattermost or markdown renderers.
_ANGLE_OPEN, _ANGLE_CLOSE = "\u2039", "\u203a"  # ‹ ›
_FULLWIDTH_AT = "\uff20"  # ＠
_FULLWIDTH_CLOSE_BRACKET = "\uff3d"  # ］

# Broadcast mentions are live anywhere in a word on some relays (Discord); a user mention needs a
# word start. An ``@`` inside an address (alice@example.com) is left alone.
# No look at what follows the word: cutting a value to its cap must not turn "@heres" into "@here".
_BROADCAST = re.compile(r"@(?=here|channel|everyone)", re.IGNORECASE)
_WORD_START_AT = re.compile(r"(?<![A-Za-z0-9_.+-])@(?=\w)")
_SCHEME = re.compile(r"://")
_MARKDOWN_LINK = re.compile(r"\](?=\()")
# An HTML entity a relay might decode back into syntax (&lt;!channel&gt;).
_ENTITY = re.compile(r"&(?=[A-Za-z]{1,32};|#[0-9]{1,8};|#[xX][0-9A-Fa-f]{1,8};)")
_FULLWIDTH_AMPERSAND = "\uff06"  # ＆

# Characters that must never reach a reader raw: Unicode categories escaped visibly.
#   Cc: C0, DEL, C1 (includes U+0085 NEL); Cf: bidi embeddings/overrides/isolates, zero-width
#   characters, BOM, soft hyphen, invisible tag characters; Zl/Zp: U+2028/U+2029; Cs: lone
#   surrogates (they cannot be encoded as UTF-8); Cn: unassigned code points.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

# AWS identifier patterns (see each validator's docstring).
# AWS identifier shapes, the one definition (config checks, detect's S3 walk and the alerts use these).
REGION_NAME = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}", re.ASCII)
ACCOUNT_ID = re.compile(r"\d{12}", re.ASCII)
_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(?:\d{12})?:\S+", re.ASCII)
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)
_LEGACY_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,254}", re.ASCII)
_IP_ADDRESS_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+", re.ASCII)
_ACCESS_POINT = re.compile(r"[a-z0-9][a-z0-9-]{1,48}[a-z0-9]", re.ASCII)
_EVENT_ID = re.compile(r"[A-Za-z0-9-]{1,128}", re.ASCII)
_USERNAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,128}", re.ASCII)


def _as_text(value: object) -> str:
    """``value`` as a string; ``str()`` of anything else, and never an exception."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return str(value)
    except Exception:  # a hostile __str__ must not take the alert down with it
        return f"(unprintable {type(value).__name__})"


def _escape_char(char: str) -> str:
    """The visible escape for one character that must not appear raw, else the character."""
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    if unicodedata.category(char) not in _ESCAPED_CATEGORIES:
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def neutralise(text: str) -> str:
    """``text`` with chat mention, chat link and markdown link syntax made inert (and visible).

    ``<``/``>`` become ``‹``/``›`` (so no ``<!channel>``, ``<@U123>``, ``<url|label>`` or HTML),
    ``@here``/``@channel``/``@everyone`` and word-start ``@name`` get a fullwidth ``＠``,
    ``[label](url)`` loses its ``](`` joint, an HTML entity (``&lt;``) its ``&``, and ``scheme://``
    is defanged to ``scheme[:]//``.
    Control characters are not touched here: :func:`inline` escapes them.
    """
    text = text.replace("<", _ANGLE_OPEN).replace(">", _ANGLE_CLOSE)
    text = _BROADCAST.sub(_FULLWIDTH_AT, text)
    text = _WORD_START_AT.sub(_FULLWIDTH_AT, text)
    text = _MARKDOWN_LINK.sub(_FULLWIDTH_CLOSE_BRACKET, text)
    text = _ENTITY.sub(_FULLWIDTH_AMPERSAND, text)
    return _SCHEME.sub("[:]//", text)


def _cap_marker(omitted: int) -> str:
    return f"…[+{omitted} chars]"


def inline(value: object, limit: int = DEFAULT_LIMIT, empty: str = "-") -> str:
    """One safe line for ``value``: escaped, neutralised and at most ``limit`` characters plus a marker.

    ``None`` and ``""`` give ``empty``; anything else not a string is shown via ``str()``. Control
    and invisible characters are escaped (``\\n``, ``\\x1b``, ``\\u202e``), chat and markdown syntax
    neutralised (:func:`neutralise`). When the escaped text is longer than ``limit``, it is cut at a
    character boundary (never inside an escape) and ``…[+N chars]`` says how many characters of the
    original were left out. Never raises.
    """
    try:
        text = _as_text(value)
        if not text:
            return empty
        try:
            cap = max(0, int(limit))
        except (TypeError, ValueError, OverflowError):
            cap = DEFAULT_LIMIT
        text = neutralise(text)
        pieces: list[str] = []
        used = 0
        for index, char in enumerate(text):
            piece = _escape_char(char)
            if used + len(piece) > cap:
                return "".join(pieces) + _cap_marker(len(text) - index)
            pieces.append(piece)
            used += len(piece)
        return "".join(pieces)
    except Exception:  # defensive: the alert must go out whatever the value
        return "(unprintable value)"


def block(value: object, limit: int = 2000, indent: str = "    | ") -> str:
    """A safe multi-line excerpt: each line is :func:`inline`-safe and starts with ``indent``.

    Real line breaks (``\\n``, ``\\r\\n``) are kept as line breaks, but no excerpt line can start
    at the left margin, so an excerpt can never pass for a section of the alert. ``limit`` caps
    the whole excerpt (in characters of the original), with a marker. Never raises.
    """
    try:
        text = _as_text(value)
        if not text:
            return indent + "-"
        cap = max(0, int(limit)) if isinstance(limit, int) else 2000
        tail = ""
        if len(text) > cap:
            tail, text = _cap_marker(len(text) - cap), text[:cap]
        lines = text.replace("\r\n", "\n").split("\n")
        shown = [indent + inline(line, limit=max(cap, 1), empty="") for line in lines]
        shown[-1] += tail
        return "\n".join(shown)
    except Exception:
        return indent + "(unprintable value)"


def _full(pattern: re.Pattern[str], value: object, max_length: int) -> str | None:
    if not isinstance(value, str) or len(value) > max_length:
        return None
    return value if pattern.fullmatch(value) else None


def checked_region(value: object) -> str | None:
    """``value`` if it is an AWS region name (``us-east-1``, ``us-gov-west-1``, ``cn-north-1``), else None."""
    return _full(REGION_NAME, value, 32)


def checked_account(value: object) -> str | None:
    """``value`` if it is an AWS account id (exactly 12 digits), else None."""
    return _full(ACCOUNT_ID, value, 12)


def checked_arn(value: object) -> str | None:
    """``value`` if it has an ARN's shape (any partition and service, at most 2048 characters), else None.

    The resource part may hold anything but whitespace and the characters :func:`inline` would
    escape (control, invisible, separators), so a checked ARN is shown exactly as it is.
    """
    candidate = _full(_ARN, value, 2048)
    if candidate is None or any(_escape_char(char) != char for char in candidate):
        return None
    return candidate


def checked_bucket(value: object) -> str | None:
    """``value`` if it is an S3 bucket name that can exist, else None.

    Accepted: today's rules (3-63 characters of lowercase letters, digits, ``.`` and ``-``,
    starting and ending with a letter or digit, not an IP address) and, deliberately, the legacy
    us-east-1 names created before March 2018 (up to 255 characters, also uppercase letters and
    ``_``, starting with a letter or digit): such buckets still exist and a responder must be
    able to close them. Both alphabets are shell- and URL-safe, and the first character is never
    ``-``, so a checked name cannot be read as a CLI option. Rejected: ``/``, spaces, ``#``, ``?``,
    quotes, ``$``, ``;``, control characters and everything else.
    """
    if not isinstance(value, str) or _IP_ADDRESS_LIKE.fullmatch(value):
        return None
    return _full(BUCKET_NAME, value, 63) or _full(_LEGACY_BUCKET, value, 255)


def checked_access_point(value: object) -> str | None:
    """``value`` if it is an S3 access point name (3-50 lowercase letters, digits, ``-``), else None."""
    return _full(_ACCESS_POINT, value, 50)


def checked_event_id(value: object) -> str | None:
    """``value`` if it looks like a CloudTrail eventID (1-128 letters, digits and ``-``), else None."""
    return _full(_EVENT_ID, value, 128)


def checked_username(value: object) -> str | None:
    """``value`` if it is an IAM user or role-session name that shows unchanged, else None.

    IAM allows letters, digits and ``+=,.@_-``; a name :func:`inline` would alter (``x@here``)
    is refused so a command or link never differs from what the reader sees.
    """
    candidate = _full(_USERNAME, value, 128)
    if candidate is None or inline(candidate, limit=256) != candidate:
        return None
    return candidate


def shown(
    value: object,
    checker: Callable[[object], str | None],
    what: str,
    *,
    limit: int = DEFAULT_LIMIT,
    empty: str = "-",
) -> str:
    """:func:`inline` of ``value``, with `` (invalid <what>)`` appended when ``checker`` refuses it.

    For values shown instead of linked. ``None`` or ``""`` shows ``empty`` without the mark:
    absent is not invalid.
    """
    text = inline(value, limit=limit, empty=empty)
    if value is None or value == "":
        return text
    try:
        valid = checker(value) is not None
    except Exception:
        valid = False
    return text if valid else f"{text} (invalid {what})"


def shell_command(argv: Sequence[str]) -> str:
    """``argv`` as one POSIX shell command line (``shlex.join``): ``shlex.split`` gives ``argv`` back."""
    return shlex.join(_as_text(arg) for arg in argv)


def console_url(
    region: object,
    path: Sequence[str],
    query: Sequence[tuple[str, str]] = (),
    fragment_path: Sequence[str] | None = None,
    fragment_query: Sequence[tuple[str, str]] = (),
    *,
    s3_global: bool = False,
) -> str | None:
    """A link into the AWS console, or None when ``region`` is not a valid region name.

    The host is always ``<region>.console.aws.amazon.com`` (or ``s3.console.aws.amazon.com`` with
    ``s3_global``); every path part, query value and fragment part is percent-quoted with
    ``safe=""``, so no value can move the link to another host, path or fragment. Callers pass
    only values that passed a ``checked_*`` validator.
    """
    if s3_global:
        host = S3_CONSOLE_HOST
    else:
        valid_region = checked_region(region)
        if valid_region is None:
            return None
        host = f"{valid_region}{CONSOLE_DOMAIN}"
    url = f"https://{host}/" + "/".join(_quoted(part) for part in path)
    if query:
        url += "?" + _query(query)
    if fragment_path is not None:
        url += "#/" + "/".join(_quoted(part) for part in fragment_path)
        if fragment_query:
            url += "?" + _query(fragment_query)
    return url


def _query(pairs: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{_quoted(key)}={_quoted(value)}" for key, value in pairs)


def _quoted(part: object) -> str:
    """Percent-quoted with nothing left as syntax (``safe=""``); a lone surrogate becomes ``%3F``."""
    return quote(_as_text(part), safe="", errors="replace")


def console_host_url(region: object, path_and_query: str) -> str | None:
    """``https://<region>.console.aws.amazon.com/<path_and_query>`` for a valid region, else None.

    ``path_and_query`` is the caller's own constant text (not a value); values go in through
    :func:`console_url`, which quotes them.
    """
    valid_region = checked_region(region)
    if valid_region is None:
        return None
    return f"https://{valid_region}{CONSOLE_DOMAIN}/{path_and_query.lstrip('/')}"
