"""Reading CloudTrail records out of files in every shape they come in, without loading too much.

Shapes: CloudTrail log files as delivered (``{"Records": [...]}``), JSON arrays, a single
record, JSON Lines (or any run of concatenated JSON values), EventBridge events (the
record under ``detail``), each plain or gzipped (recognised by its magic bytes, not its
name). A file small enough is read whole; a larger one is decoded value by value from a
buffered reader, and the elements of a top-level array or ``Records`` list one by one,
so memory stays bounded by the largest single record, not the file.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol, runtime_checkable

GZIP_MAGIC = b"\x1f\x8b"

# Files read whole when their (decompressed) size is at most this; larger ones are streamed.
IN_MEMORY_LIMIT = 64 * 1024 * 1024
# Text decoded per read when streaming.
CHUNK_CHARS = 1024 * 1024
# A single JSON value (one record) larger than this is refused rather than buffered.
MAX_VALUE_CHARS = 64 * 1024 * 1024

# Names of the files a directory walk reads; files named on the command line are always read.
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")

_WS = re.compile(r"[ \t\r\n]*")
_RECORDS_OPEN = re.compile(r'\{[ \t\r\n]*"Records"[ \t\r\n]*:[ \t\r\n]*\[')
# How many decode errors one file reports before summarising the rest.
MAX_ERRORS_PER_FILE = 10


class InputError(Exception):
    """A file that cannot be read as JSON; the message names the file and the place."""


@runtime_checkable
class ByteSource(Protocol):
    """Bytes that are not a local path (an S3 object, say), read through the same functions as a file.

    ``name`` appears in messages; ``size`` (stored bytes, ``None`` when unknown) decides between
    reading whole and streaming; :meth:`open` may be called more than once (a streamed file is
    read twice) and returns a buffered stream with ``peek``, raising ``OSError`` on failure.
    """

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int | None: ...

    def open(self) -> io.BufferedReader: ...


Source = str | ByteSource


def source_name(source: Source) -> str:
    """What messages call ``source``: its path, or the byte source's name."""
    return source if isinstance(source, str) else source.name


@dataclass
class WalkResult:
    """The files to read, in a stable order, and what went wrong finding them."""

    files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ignored: int = 0  # files in directories whose names are not JSON / JSON Lines


def find_input_files(paths: Iterable[str]) -> WalkResult:
    """Expand ``paths`` into files: files as given, directories walked recursively in sorted order.

    Inside directories only ``*.json``, ``*.jsonl``, ``*.ndjson`` (optionally ``.gz``) are
    read and hidden entries are skipped; other files are counted as ignored.
    """
    result = WalkResult()
    for path in paths:
        if os.path.isdir(path):

            def on_error(exc: OSError) -> None:
                result.errors.append(f"{exc.filename}: cannot read directory: {exc.strerror}")

            for root, dirs, names in os.walk(path, onerror=on_error):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if name.startswith("."):
                        continue
                    if name.lower().endswith(JSON_SUFFIXES):
                        result.files.append(os.path.join(root, name))
                    else:
                        result.ignored += 1
        elif os.path.exists(path):
            result.files.append(path)
        else:
            result.errors.append(f"{path}: no such file or directory")
    return result


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@cache
def inflate_module() -> Any:
    """ISA-L's zlib when installed (the CLI's Pipfile dependency: it inflates about 3x faster, with
    the same checks and the same bytes), else the standard library's. Imported on first use, so
    importing this module loads nothing beyond the standard library (the Lambda functions' rule)."""
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib
    return isal_zlib


def read_bounded(source: Source, limit: int = IN_MEMORY_LIMIT) -> bytes | None:
    """The whole (decompressed) content of ``source``, or ``None`` when it is larger than ``limit``.

    Gzip is recognised by its magic bytes; every member of a multi-member gzip file is read,
    and its CRC and length are checked. Raises :class:`InputError` naming the file.
    """
    path = source_name(source)
    try:
        if isinstance(source, str):
            with open(source, "rb") as handle:
                # Compressed or not, a file this large on disk is larger still in text: stream it.
                if os.fstat(handle.fileno()).st_size > limit:
                    return None
                raw = handle.read()
        else:
            if source.size is not None and source.size > limit:
                return None
            # In chunks: one read(limit + 1) would have the HTTP layer allocate that much up front.
            parts: list[bytes] = []
            stored = 0
            with source.open() as handle:
                while chunk := handle.read(CHUNK_CHARS):
                    stored += len(chunk)
                    if stored > limit:
                        return None
                    parts.append(chunk)
            raw = b"".join(parts)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {_describe(exc)}") from exc
    if not raw.startswith(GZIP_MAGIC):
        return raw
    inflate = inflate_module()
    parts = []  # now the inflated members
    size = 0
    while raw:
        inflater = inflate.decompressobj(wbits=31)  # 31: gzip header and trailer, CRC and length checked
        try:
            part = inflater.decompress(raw, limit + 1 - size)
        except (zlib.error, inflate.error) as exc:
            raise InputError(f"{path}: corrupt gzip data: {exc}") from exc
        size += len(part)
        if size > limit:
            return None
        if not inflater.eof:
            raise InputError(f"{path}: truncated gzip: the compressed stream ends early")
        parts.append(part)
        raw = inflater.unused_data
        if raw and not raw.startswith(GZIP_MAGIC):
            if raw.strip(b"\0"):  # zero padding after the last member is tolerated, as gzip does
                raise InputError(f"{path}: unexpected data after the end of the gzip stream")
            break
    return b"".join(parts)


def open_binary(source: Source) -> io.BufferedReader | gzip.GzipFile:
    """``source`` opened for reading bytes, decompressed when it is gzip."""
    try:
        if isinstance(source, str):
            handle = open(source, "rb")  # noqa: SIM115 - returned to the caller, who closes it
            magic = handle.read(2)
            handle.seek(0)
        else:
            handle = source.open()  # not seekable: look at the magic without consuming it
            magic = handle.peek(2)[:2]
    except OSError as exc:
        raise InputError(f"{source_name(source)}: cannot read: {_describe(exc)}") from exc
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=handle, mode="rb")
    return handle


def iter_binary_chunks(source: Source, size: int | None = None) -> Iterator[bytes]:
    """The (decompressed) bytes of ``source`` in chunks; errors become :class:`InputError`."""
    size = size or CHUNK_CHARS
    with open_binary(source) as stream:
        while True:
            try:
                chunk = stream.read(size)
            except (OSError, EOFError, zlib.error) as exc:
                raise InputError(f"{source_name(source)}: {_gzip_message(exc)}") from exc
            if not chunk:
                return
            yield chunk


def _gzip_message(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "truncated gzip: the compressed stream ends early"
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"corrupt gzip data: {exc}"
    return f"cannot read: {_describe(exc)}"


def _may_be_incomplete(exc: json.JSONDecodeError, length: int) -> bool:
    """Could more text complete the value? Errors well before the end of the text are real."""
    return exc.msg.startswith("Unterminated string") or exc.pos >= length - 6


class _TextBuffer:
    """Decoded text of a file with a read position; refilled from a reader on demand."""

    def __init__(self, path: str, text: str = "", reader: io.TextIOBase | None = None) -> None:
        self.path = path
        self.text = text
        self.pos = 0
        self.reader = reader
        self.eof = reader is None
        self._line_base = 1  # line number of text[0]
        self._offset_base = 0  # characters dropped before text[0]

    def close(self) -> None:
        """Close the underlying reader, if any."""
        if self.reader is not None:
            self.reader.close()

    def fill(self) -> bool:
        """Read more text; False at end of file. Drops consumed text to keep memory bounded."""
        if self.eof or self.reader is None:
            return False
        try:
            chunk = self.reader.read(CHUNK_CHARS)
        except UnicodeDecodeError as exc:
            raise InputError(f"{self.path}: not valid UTF-8 text: {exc.reason}") from exc
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{self.path}: {_gzip_message(exc)}") from exc
        if not chunk:
            self.eof = True
            return False
        if self.pos:
            dropped = self.text[: self.pos]
            self._line_base += dropped.count("\n")
            self._offset_base += self.pos
            self.text = self.text[self.pos :]
            self.pos = 0
        if len(self.text) > MAX_VALUE_CHARS:
            raise InputError(f"{self.path}: a single JSON value is larger than {MAX_VALUE_CHARS} characters")
        self.text += chunk
        return True

    def skip_ws(self) -> bool:
        """Move past whitespace; False when the file ends first."""
        while True:
            self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]  # matches "" at worst
            if self.pos < len(self.text):
                return True
            if not self.fill():
                return False

    def peek(self) -> str:
        """The next non-whitespace character, or '' at end of file."""
        return self.text[self.pos] if self.skip_ws() else ""

    def where(self, pos: int | None = None) -> str:
        """'line L column C' of a position in the current text."""
        pos = self.pos if pos is None else pos
        line = self._line_base + self.text.count("\n", 0, pos)
        line_start = self.text.rfind("\n", 0, pos) + 1
        return f"line {line} column {pos - line_start + 1}"

    def decode_value(self, decoder: json.JSONDecoder) -> Any:
        """Decode the JSON value at the read position, reading more text while it is incomplete."""
        while True:
            try:
                value, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if _may_be_incomplete(exc, len(self.text)) and self.fill():
                    continue
                raise InputError(f"{self.path}: malformed JSON at {self.where(exc.pos)}: {exc.msg}") from exc
            # A number or literal that reaches the end of the text may continue in the next chunk.
            if end == len(self.text) and self.fill():
                continue
            self.pos = end
            return value

    def expect(self, chars: str, what: str) -> str:
        """Consume one of ``chars`` after optional whitespace, else fail saying ``what`` was expected."""
        char = self.peek()
        if not char or char not in chars:
            found = repr(char) if char else "end of file"
            raise InputError(f"{self.path}: malformed JSON at {self.where()}: expected {what}, found {found}")
        self.pos += 1
        return char

    def records_open(self) -> bool:
        """Consume ``{"Records": [`` if it starts at the read position."""
        while True:
            match = _RECORDS_OPEN.match(self.text, self.pos)
            if match:
                self.pos = match.end()
                return True
            # Too little text to tell yet: the opening is short, so a few hundred characters decide.
            if len(self.text) - self.pos < 256 and self.fill():
                continue
            return False


@dataclass
class ParseProblems:
    """Decode errors of one file; JSON Lines files carry on after a bad line."""

    errors: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.errors) < MAX_ERRORS_PER_FILE:
            self.errors.append(message)


def _iter_array(buf: _TextBuffer, decoder: json.JSONDecoder) -> Iterator[Any]:
    """Elements of an array whose '[' was consumed, one at a time, then the closing ']'."""
    if buf.peek() == "]":
        buf.pos += 1
        return
    while True:
        if not buf.skip_ws():
            raise InputError(f"{buf.path}: malformed JSON at {buf.where()}: the array is not closed")
        yield buf.decode_value(decoder)
        if buf.expect(",]", "',' or ']' in an array") == "]":
            return


def _finish_records_object(buf: _TextBuffer, decoder: json.JSONDecoder) -> None:
    """Consume what follows the ``Records`` list in its object: other members, then '}'."""
    while buf.expect(",}", "',' or '}' after the Records list") == ",":
        buf.skip_ws()
        buf.decode_value(decoder)  # key
        buf.expect(":", "':' after a key")
        buf.skip_ws()
        buf.decode_value(decoder)  # value, not a record


def iter_json_values(buf: _TextBuffer, problems: ParseProblems) -> Iterator[Any]:
    """Each top-level value, with top-level arrays and ``Records`` lists opened element by element.

    A run of top-level values (JSON Lines) survives a bad line: the error is recorded in
    ``problems`` and reading resumes on the next line. An error inside an array ends the file.
    """
    decoder = json.JSONDecoder()
    while buf.skip_ws():
        start = buf.pos
        char = buf.text[start]
        if char == "[":
            buf.pos += 1
            yield from _iter_array(buf, decoder)
            continue
        if char == "{" and buf.records_open():
            yield from _iter_array(buf, decoder)
            _finish_records_object(buf, decoder)
            continue
        try:
            value = buf.decode_value(decoder)
        except InputError as exc:
            problems.add(str(exc))
            if not _skip_line(buf, start):
                return
            continue
        yield value


def _skip_line(buf: _TextBuffer, start: int) -> bool:
    """Move past the line holding ``start``; False when no next line exists."""
    search_from = start
    while True:
        newline = buf.text.find("\n", search_from)
        if newline >= 0:
            buf.pos = newline + 1
            return True
        buf.pos = len(buf.text)  # all of it belongs to the bad line
        if not buf.fill():
            return False
        search_from = buf.pos


def text_buffer_for(source: Source, data: bytes | None) -> _TextBuffer:
    """A buffer over ``data`` (the whole file, already read) or, when None, streaming ``source``."""
    path = source_name(source)
    if data is not None:
        try:
            text = data.decode(json.detect_encoding(data[:4]))
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path}: not valid {exc.encoding} text at byte {exc.start}: {exc.reason}"
            ) from exc
        return _TextBuffer(path, text.removeprefix("\ufeff"))
    binary = open_binary(source)
    try:
        head = binary.peek(4)[:4] if hasattr(binary, "peek") else b""
    except (OSError, EOFError, zlib.error) as exc:
        binary.close()
        raise InputError(f"{path}: {_gzip_message(exc)}") from exc
    encoding = json.detect_encoding(head) if head else "utf-8"
    reader = io.TextIOWrapper(binary, encoding=encoding, newline="")
    return _TextBuffer(path, "", reader)


def iter_records(values: Iterable[Any]) -> Iterator[Any]:
    """Records in decoded values: the items of a nested ``Records`` list, else the value itself.

    A labelled case from ``dataset/`` (``{"description", "expect", "record"}``) yields its
    record. EventBridge envelopes and non-dict values are passed on as they are; the
    caller unwraps the former and counts the latter.
    """
    for value in values:
        if isinstance(value, dict) and isinstance(value.get("Records"), list):
            yield from value["Records"]
        elif isinstance(value, dict) and isinstance(value.get("record"), dict) and "eventName" not in value:
            yield value["record"]
        elif isinstance(value, list):
            yield from iter_records(value)
        else:
            yield value
