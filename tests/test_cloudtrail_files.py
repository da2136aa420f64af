"""The file reader: every input shape, gzip handling, streaming and error messages."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest

from handlers.detection import cloudtrail_files
from handlers.detection.cloudtrail_files import (
    InputError,
    ParseProblems,
    find_input_files,
    iter_json_values,
    iter_records,
    read_bounded,
    text_buffer_for,
)


def record(n: int, name: str = "DescribeInstances") -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "eventID": f"id-{n}",
        "eventName": name,
        "eventSource": "ec2.amazonaws.com",
    }


RECORDS = [record(n) for n in range(5)]
ENVELOPE = {"detail-type": "AWS API Call via CloudTrail", "source": "aws.s3", "detail": record(9)}

SHAPES: dict[str, tuple[str, list[Any]]] = {
    "cloudtrail-compact": (json.dumps({"Records": RECORDS}, separators=(",", ":")), RECORDS),
    "cloudtrail-pretty": (json.dumps({"Records": RECORDS}, indent=2), RECORDS),
    "records-with-other-keys": (json.dumps({"Records": RECORDS, "extra": {"a": [1]}}), RECORDS),
    "records-not-first-key": (json.dumps({"extra": 1, "Records": RECORDS}), RECORDS),
    "array": (json.dumps(RECORDS), RECORDS),
    "empty-array": ("[ ]", []),
    "single-record": (json.dumps(RECORDS[0]), RECORDS[:1]),
    "json-lines": ("\n".join(json.dumps(r) for r in RECORDS) + "\n", RECORDS),
    "json-lines-crlf-blank-lines": ("\r\n\r\n".join(json.dumps(r) for r in RECORDS), RECORDS),
    "concatenated": ("".join(json.dumps(r) for r in RECORDS), RECORDS),
    "eventbridge": (json.dumps(ENVELOPE), [ENVELOPE]),
    "eventbridge-lines": (json.dumps(ENVELOPE) + "\n" + json.dumps(ENVELOPE), [ENVELOPE, ENVELOPE]),
    "array-of-cloudtrail-files": (json.dumps([{"Records": RECORDS[:2]}, {"Records": RECORDS[2:]}]), RECORDS),
    "labelled-dataset-case": (
        json.dumps({"description": "x", "expect": {}, "record": RECORDS[0]}),
        RECORDS[:1],
    ),
    "bom-and-non-ascii": (
        "\ufeff" + json.dumps([{**RECORDS[0], "userAgent": "café ☕"}], ensure_ascii=False),
        None,
    ),
}


def read_all(path: Path, data: bytes | None) -> tuple[list[Any], ParseProblems]:
    problems = ParseProblems()
    buffer = text_buffer_for(str(path), data)
    try:
        return list(iter_records(iter_json_values(buffer, problems))), problems
    finally:
        buffer.close()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("chunk", [None, 1, 7, 4096], ids=["in-memory", "stream-1", "stream-7", "stream-4k"])
def test_every_shape_reads_the_same_whole_or_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str, compress: bool, chunk: int | None
) -> None:
    text, expected = SHAPES[shape]
    raw = text.encode()
    path = tmp_path / "input.json"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    if chunk is not None:
        monkeypatch.setattr(cloudtrail_files, "CHUNK_CHARS", chunk)
    data = read_bounded(str(path)) if chunk is None else None
    records, problems = read_all(path, data)
    if expected is None:  # compare with the standard library's own reading
        expected = json.loads(text.removeprefix("\ufeff"))
    assert records == expected
    assert problems.count == 0


def test_utf16_json_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "utf16.json"
    path.write_bytes(json.dumps(RECORDS).encode("utf-16"))
    assert read_all(path, read_bounded(str(path)))[0] == RECORDS
    assert read_all(path, None)[0] == RECORDS


@pytest.fixture(params=["isal", "zlib"])
def each_inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole-file reads with ISA-L (the CLI's, when installed) and with the standard library's zlib
    (the fallback): same bytes, same limits, same errors."""
    if request.param == "isal":
        isal_zlib = pytest.importorskip("isal.isal_zlib")
        assert cloudtrail_files.inflate_module() is isal_zlib  # installed by Pipfile: the CLI uses it
    else:
        monkeypatch.setattr(cloudtrail_files, "inflate_module", lambda: zlib)


@pytest.mark.usefixtures("each_inflater")
def test_read_bounded_returns_none_above_the_limit(tmp_path: Path) -> None:
    raw = json.dumps(RECORDS * 50).encode()
    plain, packed = tmp_path / "a.json", tmp_path / "a.json.gz"
    plain.write_bytes(raw)
    packed.write_bytes(gzip.compress(raw))
    assert read_bounded(str(plain), limit=len(raw)) == raw
    assert read_bounded(str(plain), limit=len(raw) - 1) is None
    assert read_bounded(str(packed), limit=len(raw)) == raw
    # The compressed file is small, but what it expands to is over the limit.
    assert read_bounded(str(packed), limit=len(raw) - 1) is None


@pytest.mark.usefixtures("each_inflater")
def test_multi_member_gzip_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "multi.json.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n') + gzip.compress(b'{"b": 2}\n'))
    assert read_bounded(str(path)) == b'{"a": 1}\n{"b": 2}\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (gzip.compress(json.dumps(RECORDS).encode())[:-12], "truncated gzip"),
        (gzip.compress(json.dumps(RECORDS).encode())[:-4] + b"\0\0\0\0", "corrupt gzip"),  # bad length
        (b"\x1f\x8b\x08\x00garbage-after-magic", "gzip"),
        (gzip.compress(b"[]") + b"trailing junk", "after the end of the gzip stream"),
    ],
    ids=["truncated", "bad-trailer", "bad-header", "trailing-junk"],
)
@pytest.mark.usefixtures("each_inflater")
def test_damaged_gzip_raises_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "damaged.json.gz"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        read_bounded(str(path))
    assert str(path) in str(caught.value)
    # The streaming reader reports the same damage.
    with pytest.raises(InputError) as streamed:
        read_all(path, None)
    assert str(path) in str(streamed.value)


@pytest.mark.parametrize("streamed", [False, True], ids=["in-memory", "streamed"])
@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"Records": [{"a": 1}, {"b": 2},]}', "line 1"),
        ('[\n{"a": 1},\n{"b": }\n]', "line 3"),
        ('{"Records": [{"a": 1}', "found end of file"),
        ("[1, 2", "line 1"),
        ('{"a": 1} ]', "line 1 column 10"),
    ],
)
def test_malformed_json_is_reported_with_file_and_line(
    tmp_path: Path, text: str, where: str, streamed: bool
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    try:
        _, problems = read_all(path, None if streamed else path.read_bytes())
        messages = problems.errors
    except InputError as exc:  # inside an array the file ends; between values (JSON Lines) it goes on
        messages = [str(exc)]
    assert len(messages) == 1
    assert str(path) in messages[0]
    assert where in messages[0]


def test_json_lines_carry_on_after_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    lines = [
        json.dumps(RECORDS[0]),
        '{"eventName": broken',
        json.dumps(RECORDS[1]),
        "not json",
        json.dumps(RECORDS[2]),
    ]
    path.write_text("\n".join(lines))
    for data in (path.read_bytes(), None):
        records, problems = read_all(path, data)
        assert records == RECORDS[:3]
        assert problems.count == 2
        assert "line 2" in problems.errors[0] and "line 4" in problems.errors[1]
        assert all(str(path) in error for error in problems.errors)


def test_invalid_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"eventName": "caf\xe9"}')
    with pytest.raises(InputError, match=r"(?i)not valid utf-8"):
        read_all(path, path.read_bytes())
    with pytest.raises(InputError, match=r"(?i)not valid utf-8"):
        read_all(path, None)


def test_find_input_files_walks_sorted_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ("b/deep/z.json.gz", "b/y.jsonl", "a/x.json", "a/w.ndjson", ".git/h.json", "a/.hidden.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "a" / "README.md").write_text("not input")
    explicit = tmp_path / "a" / "README.md"
    result = find_input_files([str(tmp_path), str(explicit), str(tmp_path / "missing")])
    relative = [str(Path(f).relative_to(tmp_path)) for f in result.files]
    assert relative == ["a/w.ndjson", "a/x.json", "b/y.jsonl", "b/deep/z.json.gz", "a/README.md"]
    assert result.ignored == 1
    assert result.errors == [f"{tmp_path / 'missing'}: no such file or directory"]


def test_streaming_a_large_array_holds_little_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cloudtrail_files, "CHUNK_CHARS", 64 * 1024)
    path = tmp_path / "big.json.gz"
    padding = "x" * 900
    with gzip.open(path, "wt") as out:
        out.write('{"Records":[')
        out.write(",".join(json.dumps({**record(n), "pad": padding}) for n in range(8_000)))
        out.write("]}")
    size = 8_000 * 1000  # about 8 MB of text
    tracemalloc.start()
    count = 0
    for item in read_all_iter(path):
        count += item["eventID"].startswith("id-")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 8_000
    assert peak < size / 8, f"peak {peak} bytes while streaming {size} bytes"


def read_all_iter(path: Path) -> Any:
    buffer = text_buffer_for(str(path), None)
    try:
        yield from iter_records(iter_json_values(buffer, ParseProblems()))
    finally:
        buffer.close()
