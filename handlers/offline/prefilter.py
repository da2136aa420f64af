"""A bytes-level test that decides whether a file can hold a watched event at all.

Almost all of a CloudTrail archive is noise (EC2, KMS, STS, ...), and parsing JSON is
the slowest step of ``detect``. A regex over the raw bytes of a decompressed file finds
``"eventName": "<watched name>"`` about ten times faster than ``json.loads`` can parse,
so only files that can matter are parsed.

The test must never drop a watched event, so a file counts as a candidate when:

* ``"eventName"``, optional JSON whitespace, ``:``, optional whitespace, then a watched
  name as a complete JSON string, appears anywhere in it (a record, an EventBridge
  ``detail``, pretty-printed or compact); or ``eventName`` holds a list, which the
  classifier reads by joining its strings (old list-valued event versions);
* it holds a ``\\u00XX`` escape in the range that covers every ASCII letter
  (``\\u0040``-``\\u007f``): JSON may spell ``PutBucketPolicy`` as
  ``\\u0050utBucketPolicy`` or the key as ``event\\u004eame``, which no literal search
  sees; such files are rare (AWS writes plain ASCII names) and simply get parsed;
* it is not UTF-8 (UTF-16/32 JSON), where the bytes differ from the text.

Names and keys are letters only, and JSON allows no other way to spell a letter, so
these three cover every spelling of a watched ``eventName``.

Some names matter only with certain text in the record (:func:`handlers.detection.rules.event_markers`):
a ``PutBucketTagging`` only when it names the approval tag. Such a name makes a file a
candidate only together with every one of its texts (runs of ASCII letters, which the same
argument shows appear literally unless a letter escape makes the file a candidate anyway).
Tagging calls are everyday traffic; without this nearly every file would be parsed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from handlers.detection.acl import GRANT_HEADERS
from handlers.detection.rules import (
    RULES_BY_EVENT,
    WATCHED_EVENT_NAMES,
    acl_grants,
    event_markers,
    watched_event_names,
)
from handlers.detection.rules import _can_fire as can_fire
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext

# JSON's insignificant whitespace: exactly these four characters (RFC 8259, section 2).
_WS = rb"[ \t\r\n]*"
_LEADING_WS = re.compile(_WS)
_JSON_WS = b" \t\r\n"

# An escape of a character from '@' to DEL, which includes A-Z and a-z.
LETTER_ESCAPE = re.compile(rb"\\u00[4-7][0-9a-fA-F]")

# Counted in files that are not parsed: every CloudTrail record carries this key once.
RECORD_MARKER = b'"eventVersion"'

# Longest stretch a match can span without whitespace, for scanning a file in chunks.
_KEY = b'"eventName"'


def watched_name_pattern(names: Iterable[str]) -> re.Pattern[bytes]:
    """A regex for ``"eventName" : "<one of names>"`` (or a list value) in raw JSON bytes."""
    # Longest first so that PutObjectAcl is tried before PutObject (either way is a match).
    alternatives = b"|".join(re.escape(n.encode()) for n in sorted(names, key=len, reverse=True))
    # The pattern starts with a literal, which lets the regex engine skip ahead quickly.
    return re.compile(_KEY + _WS + b":" + _WS + b'(?:"(?:' + alternatives + b')"|\\[)')


WATCHED_NAME = watched_name_pattern(WATCHED_EVENT_NAMES)


@cache
def pattern_for(names: frozenset[str]) -> re.Pattern[bytes]:
    """:func:`watched_name_pattern` for ``names``, compiled once per set (e.g. per detector context)."""
    return WATCHED_NAME if names == WATCHED_EVENT_NAMES else watched_name_pattern(names)


# Names that matter only with some literal texts in the same file: (name pattern, texts).
Conditional = tuple[tuple[re.Pattern[bytes], tuple[bytes, ...]], ...]


def _longest_first(text: bytes) -> tuple[int, bytes]:
    return -len(text), text


@cache
def watch_for(context: DetectorContext = NO_CONTEXT) -> tuple[re.Pattern[bytes], Conditional]:
    """What makes a file a candidate for ``context``: names that always matter, and conditional ones."""
    names = watched_event_names(context)
    markers = event_markers(context)
    plain = frozenset(name for name in names if name not in markers)
    # Longest text first: the one least likely to be in a file, and the fastest to rule out (all()
    # stops at the first text missing, and a long needle lets the search skip further).
    conditional = tuple(
        (watched_name_pattern([name]), tuple(sorted({t.encode() for t in markers[name]}, key=_longest_first)))
        for name in sorted(markers)
        if name in names
    )
    return pattern_for(plain), conditional


# The longest text a match needs when it holds no whitespace: the key, ':', the name, quotes.
_LONGEST_MATCH = max(len(_KEY) + 1 + max(len(n) for n in WATCHED_EVENT_NAMES) + 2, len(RECORD_MARKER))
# A chunk that ends after "eventName", whitespace, maybe ':' and the start of a name: a match may
# continue in the next chunk. Whitespace can be dropped from what is carried over ([ws]* matches none).
_PENDING = re.compile(_KEY + _WS + b"(?:(:)" + _WS + b'("[A-Za-z]*)?)?\\Z')


def is_utf8(head: bytes) -> bool:
    """True when JSON starting with ``head`` is UTF-8 (with or without a BOM), as json.loads detects."""
    return json.detect_encoding(head[:4]) in ("utf-8", "utf-8-sig")


def may_contain_watched(
    data: bytes, watched: re.Pattern[bytes] = WATCHED_NAME, conditional: Conditional = ()
) -> bool:
    """False only when no record in ``data`` (one whole file) can have a ``watched`` ``eventName``
    or a ``conditional`` one together with all of its texts."""
    if not is_utf8(data):
        return True
    if watched.search(data) is not None:
        return True
    # No "eventName" key at all: not CloudTrail's spelling (a log pipeline's "eventname" or
    # "event_name", read by a full parse that renames keys) or no records; the search stops at
    # the first record of an ordinary file, so only such files pay for it.
    if _KEY not in data and data.strip(_JSON_WS):
        return True
    # Texts first: a plain substring test is cheaper than the regex and usually fails.
    if any(all(text in data for text in texts) and name.search(data) for name, texts in conditional):
        return True
    # Most files hold no backslash at all, and a memchr-speed test rules out every escape.
    return b"\\" in data and LETTER_ESCAPE.search(data) is not None


def count_records(data: bytes) -> int:
    """Records in an unparsed file, counted as occurrences of the ``"eventVersion"`` key."""
    return data.count(RECORD_MARKER)


class ChunkedPrefilter:
    """:func:`may_contain_watched` and :func:`count_records` over a file read in chunks.

    Matches may straddle two chunks, so a short tail of each chunk is carried into
    the next; when a chunk ends between ``"eventName"`` and its value (whatever the
    amount of whitespace), the pending key is carried instead, with the whitespace
    collapsed, so the memory held stays bounded.
    """

    def __init__(self, watched: re.Pattern[bytes] = WATCHED_NAME, conditional: Conditional = ()) -> None:
        self.watched = watched
        self.conditional = conditional
        self.candidate = False
        self.records = 0  # complete only while not a candidate: callers stop feeding a candidate
        self._tail = b""
        self._first = True
        # Per conditional name: whether the name was seen, and which of its texts were.
        self._names_seen = [False] * len(conditional)
        self._texts_seen: list[set[bytes]] = [set() for _ in conditional]
        # Texts may straddle chunks too: keep the last (longest text - 1) bytes of the raw stream.
        self._text_span = max((len(t) for _, texts in conditional for t in texts), default=1) - 1
        self._text_tail = b""
        self._saw_key = self._saw_content = False  # see finish()

    def feed(self, chunk: bytes) -> None:
        """Scan the next chunk of the file."""
        if not chunk or self.candidate:
            return
        if self._first:
            self._first = False
            if not is_utf8(chunk):
                self.candidate = True
                return
        window = self._tail + chunk
        self._saw_key = self._saw_key or _KEY in window
        self._saw_content = self._saw_content or bool(chunk.strip(_JSON_WS))
        # Markers wholly inside the carried tail were counted with the previous chunk.
        self.records += window.count(RECORD_MARKER) - self._tail.count(RECORD_MARKER)
        if self.watched.search(window) or (b"\\" in window and LETTER_ESCAPE.search(window)):
            self.candidate = True
            return
        if self.conditional and self._conditional_complete(window, chunk):
            self.candidate = True
            return
        self._tail = window[-_LONGEST_MATCH:]
        key_at = window.rfind(_KEY)
        if key_at >= 0:
            pending = _PENDING.match(window, key_at)
            if pending:
                self._tail = _KEY + (pending.group(1) or b"") + (pending.group(2) or b"")

    def finish(self) -> None:
        """After the last chunk: a file with content but no ``"eventName"`` key at all is a
        candidate too (keys a log pipeline rewrote, read by a full parse; see may_contain_watched)."""
        if not self.candidate and self._saw_content and not self._saw_key:
            self.candidate = True

    def _conditional_complete(self, window: bytes, chunk: bytes) -> bool:
        """Track conditional names (in ``window``) and their texts (in the raw stream) across chunks."""
        texts_window = self._text_tail + chunk
        self._text_tail = texts_window[-self._text_span :] if self._text_span else b""
        complete = False
        for index, (name, texts) in enumerate(self.conditional):
            if not self._names_seen[index] and name.search(window):
                self._names_seen[index] = True
            seen = self._texts_seen[index]
            seen.update(text for text in texts if text not in seen and text in texts_window)
            complete = complete or (self._names_seen[index] and len(seen) == len(texts))
        return complete


# --- Record level -------------------------------------------------------------------------------
#
# A candidate file written the way CloudTrail writes it (``{"Records":[...]}``, every record an
# object) need not be parsed whole into Python objects: only the records holding a watched
# ``"eventName"`` are. :func:`records_to_parse` returns their text, or None whenever it cannot
# show that this gives exactly the records a full parse would classify.
#
# The proof needs the file's structure, which no byte search gives: a record's requestParameters
# may hold a list of objects written by the person we watch, and one of them can look exactly like
# a record (``},{"eventVersion":...,"eventName":"PutBucketAcl",...}``). simdjson validates the
# whole file and walks its top-level records about ten times faster than json.loads builds them,
# so the CLI uses it when installed (Pipfile [packages]); without it every candidate file is
# parsed whole, which is slower and finds the same.


@cache
def simdjson_module() -> Any:
    """simdjson, or None without it (the standard library alone: full parses). Imported on first
    use, so importing this module loads nothing beyond the standard library."""
    try:
        import simdjson
    except ImportError:
        return None
    return simdjson


_RECORDS_OPEN = b'{"Records":['
_RECORD_START = b'{"eventVersion"'
_BOUNDARY = b'},{"eventVersion"'  # between two records of the Records array
_COMPACT_KEY = b'"eventName":"'


# Optional-ACL calls (CreateBucket, PutObject, CopyObject) find something only with an ACL in one
# of its three request forms (handlers.detection.acl): the canned header, a grant header or an XML body. The
# texts come from the ACL reader's own tables; keys match case-insensitively (get_ci) and may be
# spelled with any \u escape, so any escape in the record counts as a match.
def _common_prefix(words: Iterable[str]) -> str:
    first, last = min(words), max(words)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]


# The request forms the ACL reader (handlers.detection.acl) looks for: the canned header, a grant header
# (GRANT_HEADERS' common prefix, x-amz-grant-) and the XML body. detect_sql selects by the same texts.
ACL_TEXTS: tuple[str, ...] = (
    "x-amz-acl",
    _common_prefix(GRANT_HEADERS),
    "AccessControlPolicy",
    "accessControlList",
)
_ACL_TEXTS_LOWER = tuple(dict.fromkeys(text.lower().encode() for text in ACL_TEXTS))


def _acl_optional_names(context: DetectorContext) -> frozenset[str]:
    """Names whose only reader (given ``context``) is the ACL rule and for which an ACL is optional."""
    names = set()
    for name in set(acl_grants.EVENT_NAMES) - acl_grants.ACL_REQUIRED:
        readers = [m for m in RULES_BY_EVENT.get((acl_grants.EVENT_SOURCE, name), ()) if can_fire(m, context)]
        if readers == [acl_grants]:
            names.add(name)
    return frozenset(names)


# Record tests read the record in place, data[start:end], so a record that fails costs no copy.
def _any_acl_text(data: bytes, start: int, end: int) -> bool:
    if data.find(b"\\u", start, end) >= 0:
        return True
    lowered = data[start:end].lower()  # keys match whatever their case (handlers.detection.records.get_ci)
    # A plain loop (memmem per text): any() over a generator costs more than the searches here,
    # and an IGNORECASE regex is ten times slower still.
    for text in _ACL_TEXTS_LOWER:  # noqa: SIM110
        if text in lowered:
            return True
    return False


def _always(data: bytes, start: int, end: int) -> bool:
    return True


RecordTest = Callable[[bytes, int, int], bool]


@cache
def record_tests(context: DetectorContext = NO_CONTEXT) -> dict[bytes, RecordTest]:
    """Per watched name (as bytes), a cheap test of a record's raw text ``data[start:end]``: False
    only when no rule can find anything in it. Derived from the registry: a rule's
    ``prefilter_markers`` (all of the texts), and the ACL rule's calls for which an ACL is optional
    (any ACL text: without an ACL in any request form the rule finds nothing)."""
    names = watched_event_names(context)
    markers = event_markers(context)
    acl_optional = _acl_optional_names(context)
    tests: dict[bytes, RecordTest] = {}
    for name in sorted(names):
        test: RecordTest = _always
        if name in markers:
            texts = tuple(dict.fromkeys(text.encode() for text in markers[name]))

            def test(data: bytes, start: int, end: int, texts: tuple[bytes, ...] = texts) -> bool:
                if data.find(b"\\u", start, end) >= 0:
                    return True
                return all(data.find(text, start, end) >= 0 for text in texts)

        elif name in acl_optional:
            test = _any_acl_text
        tests[name.encode()] = test
    return tests


@dataclass
class RecordPlan:
    """What :func:`records_to_parse` found: the raw records to parse, in file order."""

    records: list[tuple[bytes, bytes]]  # (raw text of the record, its watched eventName)
    total: int  # records in the file (the top-level Records list, as simdjson reads it)
    skipped: int  # watched names whose record failed its cheap test (not parsed)


_PARSERS: list[Any] = []


def _parser() -> Any:
    """The process's simdjson parser: one allocation reused for every file (a new parser per file
    costs a third more time and memory); a fresh one when objects of the last parse still live."""
    if not _PARSERS or sys.getrefcount(_PARSERS[0]) > 2:  # the list and the argument: nothing else
        _PARSERS[:] = [simdjson_module().Parser()]
    return _PARSERS[0]


def _top_level(data: bytes, names: frozenset[str]) -> tuple[int, int] | None:
    """(records, records with a watched ``eventName``) of the file's top-level ``Records`` list as
    simdjson reads it, or None when simdjson is missing, the file is not valid JSON to it, or the
    list holds anything but objects (a full parse says what such a file holds)."""
    simdjson = simdjson_module()
    if simdjson is None:
        return None
    try:
        document = _parser().parse(data)
        records = document.get("Records") if isinstance(document, simdjson.Object) else None
        if not isinstance(records, simdjson.Array):
            return None
        # One C-level get per record: an element that is not an object has no get (AttributeError).
        # A record without CloudTrail's own eventName key (a pipeline's "eventname") is read by a
        # full parse, which renames keys (handlers.detection.records.normalize_record).
        found = [record.get("eventName") for record in records]
        if None in found:
            return None
        watched = sum(1 for name in found if name in names)  # unhashable (not a string): TypeError
        return len(records), watched
    except (ValueError, RuntimeError, TypeError, OverflowError, AttributeError):
        return None  # invalid JSON to simdjson, a number it refuses, an element that is no object


def records_to_parse(data: bytes, context: DetectorContext = NO_CONTEXT) -> RecordPlan | None:
    """The records of ``data`` (one whole file) that some rule may act on, or None when the file
    must be parsed whole because the shortcut cannot be shown to be exact for it.

    The byte level: the file is ``{"Records":[`` ... ``]}`` (surrounding whitespace allowed) with
    no letter escape (``\\u0050utObject``), and each watched ``"eventName"`` hit is compact and
    follows a ``,``. A hit's record is the text from the last ``{"eventVersion"`` before it to the
    next ``},{"eventVersion"`` (or the closing ``]}``).

    The structure (:func:`_top_level`): the file is valid JSON, and the number of hits equals the
    number of top-level records whose ``eventName`` is watched. A letter-free hit is always a key
    (a quote inside a string is escaped), and every watched top-level record holds its own hit, so
    equal counts leave no hit anywhere else: none nested in another record, none duplicated. The
    caller then parses each record's text with ``json.loads``, which must give one object naming
    the hit: that text is a whole JSON value starting ``{"eventVersion"`` and holding a key of a
    top-level record, which only that record itself is. Anything else means None.
    """
    if not is_utf8(data) or data[:3] == b"\xef\xbb\xbf":
        return None
    start = _LEADING_WS.match(data).end()  # type: ignore[union-attr]  # matches "" at worst
    end = len(data)
    while end and data[end - 1] in _JSON_WS:
        end -= 1
    if not data.startswith(_RECORDS_OPEN, start) or not data.endswith(b"]}", 0, end):
        return None
    if b"\\" in data and LETTER_ESCAPE.search(data):
        return None
    first = start + len(_RECORDS_OPEN)
    names = watched_event_names(context)
    tests = record_tests(context)
    plan = RecordPlan([], 0, 0)
    hits = 0
    for hit in pattern_for(names).finditer(data):
        at = hit.start()
        text = hit.group()
        if not text.startswith(_COMPACT_KEY) or data[at - 1 : at] != b"," or not text.endswith(b'"'):
            return None  # whitespace, a list value, or not plainly a key
        hits += 1
        name = text[len(_COMPACT_KEY) : -1]
        record_start = data.rfind(_RECORD_START, first, at)
        if record_start < 0:
            return None
        boundary = data.find(_BOUNDARY, at)
        record_end = boundary + 1 if boundary >= 0 else end - 2  # the last record ends before "]}"
        if not tests[name](data, record_start, record_end):
            plan.skipped += 1
            continue
        plan.records.append((data[record_start:record_end], name))
    counts = _top_level(data, names)
    if counts is None or counts[1] != hits:
        return None
    plan.total = counts[0]
    return plan
