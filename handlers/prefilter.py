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

Some names matter only with certain text in the record (:func:`handlers.rules.event_markers`):
a ``PutBucketTagging`` only when it names the approval tag. Such a name makes a file a
candidate only together with every one of its texts (runs of ASCII letters, which the same
argument shows appear literally unless a letter escape makes the file a candidate anyway).
Tagging calls are everyday traffic; without this nearly every file would be parsed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache

from handlers.rules import WATCHED_EVENT_NAMES, event_markers, watched_event_names
from handlers.rules.detector_context import NO_CONTEXT, DetectorContext

# JSON's insignificant whitespace: exactly these four characters (RFC 8259, section 2).
_WS = rb"[ \t\r\n]*"

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


@cache
def watch_for(context: DetectorContext = NO_CONTEXT) -> tuple[re.Pattern[bytes], Conditional]:
    """What makes a file a candidate for ``context``: names that always matter, and conditional ones."""
    names = watched_event_names(context)
    markers = event_markers(context)
    plain = frozenset(name for name in names if name not in markers)
    conditional = tuple(
        (watched_name_pattern([name]), tuple(dict.fromkeys(text.encode() for text in markers[name])))
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
