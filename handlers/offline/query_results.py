"""``detect --from-query-results FILE...``: classify the rows of an Athena or CloudTrail Lake query.

The query is the one :mod:`handlers.offline.detect_sql` prints. Each result row is mapped back to the
CloudTrail record it came from, so :func:`handlers.detection.classify.classify` gives the same findings as
on the raw record:

* column names (lower case in both engines) become the record's keys (``eventname`` ->
  ``eventName``, ``sourceipaddress`` -> ``sourceIPAddress``, ...);
* JSON text columns (``requestparameters``, ``responseelements``, ``additionaleventdata``) are
  parsed; their keys are the record's own and stay as they are;
* struct columns (``useridentity``, ``resources``, ``tlsdetails``), selected as JSON text, are
  parsed and their lower-case field names restored (``principalid`` -> ``principalId``,
  a resource's ``arn`` -> ``ARN``); fields the record did not have (null) are dropped;
* an empty CSV cell is a null (Athena writes nulls as empty);
* CloudTrail Lake only: ``requestparameters`` and the other maps hold nested objects as JSON
  strings, which are parsed back, and timestamps (``2024-03-01 12:00:00.000``) become
  CloudTrail's ``2024-03-01T12:00:00Z``.

Formats read (detected from the content):

* Athena's CSV output (the console download or the ``.csv`` in the query result location);
* Athena's ``GetQueryResults`` JSON (``{"ResultSet": {"Rows": [...]}}``, the header row first), one
  page, a list of pages or one page per line (``aws athena get-query-results`` output);
* JSON Lines of row objects (Athena ``UNLOAD ... WITH (format = 'JSON')``);
* CloudTrail Lake's ``GetQueryResults`` JSON (``{"QueryResultRows": [[{"col": "value"}, ...], ...]}``),
  one page, a list of pages or one page per line.

Standard library only (part of the Lambda zip).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, TextIO

from handlers.detection.classify import classify
from handlers.detection.records import Record
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext

Engine = Literal["athena", "cloudtrail-lake"]


def _by_lower_case(keys: tuple[str, ...]) -> dict[str, str]:
    """Each key under its lower-case spelling (the engines' schemas lower-case names)."""
    return {key.lower(): key for key in keys}


# Column (as both engines name it, lower case) -> the CloudTrail record's key.
RECORD_KEYS: dict[str, str] = _by_lower_case(
    (
        "eventVersion",
        "userIdentity",
        "eventTime",
        "eventSource",
        "eventName",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "errorCode",
        "errorMessage",
        "requestParameters",
        "responseElements",
        "additionalEventData",
        "requestID",
        "eventID",
        "readOnly",
        "resources",
        "eventType",
        "apiVersion",
        "managementEvent",
        "recipientAccountId",
        "serviceEventDetails",
        "sharedEventID",
        "vpcEndpointId",
        "vpcEndpointAccountId",
        "eventCategory",
        "addendum",
        "sessionCredentialFromConsole",
        "edgeDeviceDetails",
        "tlsDetails",
        "annotation",
        "insightDetails",
    )
)
# Columns holding the record's own JSON (keys kept as they are).
JSON_COLUMNS = frozenset(
    {"requestparameters", "responseelements", "additionaleventdata", "serviceeventdetails"}
)
# Struct columns: the schema lower-cases their field names.
STRUCT_COLUMNS = frozenset({"useridentity", "resources", "tlsdetails", "addendum"})
# Lower-case struct field -> the record's spelling (userIdentity, resources, tlsDetails, addendum).
FIELD_KEYS: dict[str, str] = _by_lower_case(
    (
        "type",
        "principalId",
        "arn",
        "accountId",
        "invokedBy",
        "accessKeyId",
        "userName",
        "onBehalfOf",
        "userId",
        "identityStoreArn",
        "sessionContext",
        "attributes",
        "mfaAuthenticated",
        "creationDate",
        "sessionIssuer",
        "ec2RoleDelivery",
        "ec2IssuedInVpc",
        "webIdFederationData",
        "federatedProvider",
        "sourceIdentity",
        "credentialId",
        "inScopeOf",
        "sourceArn",
        "sourceAccount",
        "issuerType",
        "credentialsIssuedTo",
        "identityProvider",
        "tlsVersion",
        "cipherSuite",
        "clientProvidedHostHeader",
        "reason",
        "updatedFields",
        "originalRequestID",
        "originalEventID",
    )
)
RESOURCE_KEYS: dict[str, str] = {
    "arn": "ARN",
    "accountid": "accountId",
    "type": "type",
    "arnprefix": "ARNPrefix",
}
# Maps inside structs whose keys are data, not field names.
_MAP_FIELDS = frozenset({"webidfederationdata"})

_LAKE_TIME = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(\.\d+)?")


class ResultsError(ValueError):
    """A results file that is not one of the formats read."""


def _lake_time(value: Any) -> Any:
    """CloudTrail Lake's timestamp text as CloudTrail's ``2024-03-01T12:00:00Z``; other values unchanged."""
    if not isinstance(value, str):
        return value
    match = _LAKE_TIME.fullmatch(value)
    if not match:
        return value
    fraction = (match.group(3) or "").rstrip("0").rstrip(".")
    return f"{match.group(1)}T{match.group(2)}{fraction}Z"


def _json_value(value: Any) -> Any:
    """A JSON text column's value: parsed, or kept as text when it is not JSON (damaged)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _lake_map_value(value: Any) -> Any:
    """A CloudTrail Lake map value: nested objects, lists and nulls are stored as JSON text."""
    if value == "null":
        return None
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _fields(value: Any, keys: Mapping[str, str], lake: bool) -> Any:
    """A struct from its JSON: field names restored, null fields dropped (recursively)."""
    if isinstance(value, list):
        return [_fields(item, keys, lake) for item in value]
    if not isinstance(value, dict):
        return _lake_time(value) if lake else value
    restored: dict[str, Any] = {}
    for name, item in value.items():
        if item is None:
            continue
        lowered = name.lower() if isinstance(name, str) else name
        key = keys.get(lowered, name) if isinstance(lowered, str) else name
        restored[key] = item if lowered in _MAP_FIELDS else _fields(item, keys, lake)
    return restored


def row_to_record(row: Mapping[str, Any], engine: Engine = "athena") -> Record:
    """The CloudTrail record a result row came from (see the module docstring for the mapping)."""
    lake = engine == "cloudtrail-lake"
    record: Record = {}
    for column, raw in row.items():
        name = str(column).strip().lower()
        if raw is None or raw == "":
            continue
        key = RECORD_KEYS.get(name, column)
        if name in STRUCT_COLUMNS:
            keys = RESOURCE_KEYS if name == "resources" else FIELD_KEYS
            value = _fields(_json_value(raw), keys, lake)
        elif name in JSON_COLUMNS:
            value = _json_value(raw)
            if lake and isinstance(value, dict):
                value = {k: _lake_map_value(v) for k, v in value.items()}
        elif lake:
            value = _lake_time(raw)
        else:
            value = raw
        record[str(key)] = value
    return record


def _engine_of(row: Mapping[str, Any]) -> Engine:
    """CloudTrail Lake rows carry ``eventtime`` as timestamp text; Athena rows as CloudTrail's ISO text."""
    for column, value in row.items():
        if str(column).lower() == "eventtime" and isinstance(value, str) and _LAKE_TIME.fullmatch(value):
            return "cloudtrail-lake"
    return "athena"


def _athena_page_rows(page: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    result = page.get("ResultSet") or {}
    info = (result.get("ResultSetMetadata") or {}).get("ColumnInfo") or []
    names = [str(column.get("Name") or column.get("Label")) for column in info]
    rows = [[cell.get("VarCharValue") for cell in row.get("Data") or []] for row in result.get("Rows") or []]
    if rows and names and rows[0] == names:  # a SELECT's first page starts with the header
        rows = rows[1:]
    if not names and rows:
        names, rows = [str(v) for v in rows[0]], rows[1:]
    for values in rows:
        yield dict(zip(names, values, strict=False))


def _lake_page_rows(page: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for row in page.get("QueryResultRows") or []:
        merged: dict[str, Any] = {}
        for cell in row if isinstance(row, list) else [row]:
            if isinstance(cell, dict):
                merged.update(cell)
        yield merged


def _rows_of_value(value: Any) -> Iterator[tuple[dict[str, Any], Engine | None]]:
    """Rows (with the engine when the format says it) from one JSON value of a results file."""
    if isinstance(value, list):
        for item in value:
            yield from _rows_of_value(item)
    elif isinstance(value, dict) and "QueryResultRows" in value:
        for row in _lake_page_rows(value):
            yield row, "cloudtrail-lake"
    elif isinstance(value, dict) and "ResultSet" in value:
        for row in _athena_page_rows(value):
            yield row, "athena"
    elif isinstance(value, dict):
        yield value, None
    else:
        raise ResultsError(f"expected a result row or page (a JSON object), found {type(value).__name__}")


def iter_rows(text: str) -> Iterator[tuple[dict[str, Any], Engine | None]]:
    """Rows of a results file's text: CSV, one JSON document, or JSON Lines."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        return
    if stripped[0] not in "{[":
        csv.field_size_limit(2**31 - 1)  # a bucket policy may be long
        for row in csv.DictReader(io.StringIO(stripped, newline="")):
            yield dict(row), "athena"
        return
    try:
        document = json.loads(stripped)
    except ValueError:
        document = None
    if document is not None:
        yield from _rows_of_value(document)
        return
    for number, line in enumerate(stripped.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise ResultsError(f"line {number}: not JSON ({exc})") from None
        yield from _rows_of_value(value)


def read_records(text: str, engine: Engine | None = None) -> Iterator[Record]:
    """The CloudTrail records of a results file's text (``engine`` None: from the format and the rows)."""
    for row, found in iter_rows(text):
        yield row_to_record(row, engine or found or _engine_of(row))


def findings_of(records: Iterable[Record], context: DetectorContext = NO_CONTEXT) -> Iterator[str]:
    """One compact JSON line per finding, as ``detect`` prints them."""
    for record in records:
        for finding in classify(record, context):
            yield json.dumps(finding, separators=(",", ":"))


def main_results(
    paths: Iterable[str],
    context: DetectorContext = NO_CONTEXT,
    *,
    engine: Engine | None = None,
    emit: Callable[[str], str] = lambda line: line,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``detect --from-query-results FILE...``: findings on stdout, one line each, in file and row order.

    Returns 0 when every file was read, 2 when any could not be (each named on stderr; the
    others are still classified). ``emit`` turns a finding's JSON line into the printed line
    (``--format ocsf``).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    status = 0
    rows = findings = 0
    for path in paths:
        try:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                text = handle.read()
            records = list(read_records(text, engine))
        except (OSError, UnicodeDecodeError, ResultsError, csv.Error) as exc:
            print(f"detect: error: {path}: {exc}", file=err)
            status = 2
            continue
        rows += len(records)
        for line in findings_of(records, context):
            out.write(emit(line) + "\n")
            findings += 1
    out.flush()
    print(f"detect: query results: {rows} row(s), {findings} finding(s)", file=err)
    return status
