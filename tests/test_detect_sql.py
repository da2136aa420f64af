"""The local proof of ``detect --print-sql`` and ``detect --from-query-results``.

The Athena query is parsed with sqlglot in its Athena dialect, transpiled to DuckDB and run
over a table built from the documented Athena CloudTrail DDL (also transpiled by sqlglot),
loaded with the labelled dataset and a generated benchmark archive, each record projected onto
the table's schema as Athena's CloudTrail SerDe does (nested request data kept as JSON text).
It must select every record the classifier flags, and the rows mapped back by
:mod:`handlers.offline.query_results` (through Athena's CSV and JSON output) must give exactly the
findings of the raw records. sqlglot and duckdb are dev dependencies only.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks import gen_archive
from demo.dataset_loader import load_cases
from handlers.detection.acl import GRANT_HEADERS
from handlers.detection.classify import classify
from handlers.detection.rules import event_markers, watched_event_names
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext
from handlers.offline.detect_sql import ACL_TEXTS, acl_optional_names, main_sql, print_sql
from handlers.offline.query_results import main_results, read_records, row_to_record

sqlglot = pytest.importorskip("sqlglot")
duckdb = pytest.importorskip("duckdb")
exp = sqlglot.exp

# The columns of the documented table (Athena user guide, "Create the table for CloudTrail logs
# in Athena using partition projection"), with its `timestamp` partition column.
ATHENA_DDL = """
CREATE EXTERNAL TABLE cloudtrail_logs_pp(
    eventversion STRING,
    useridentity STRUCT<
        type: STRING, principalid: STRING, arn: STRING, accountid: STRING, invokedby: STRING,
        accesskeyid: STRING, username: STRING,
        onbehalfof: STRUCT<userid: STRING, identitystorearn: STRING>,
        sessioncontext: STRUCT<
            attributes: STRUCT<mfaauthenticated: STRING, creationdate: STRING>,
            sessionissuer: STRUCT<type: STRING, principalid: STRING, arn: STRING, accountid: STRING,
                username: STRING>,
            ec2roledelivery: STRING,
            webidfederationdata: STRUCT<federatedprovider: STRING, attributes: MAP<STRING, STRING>>>>,
    eventtime STRING,
    eventsource STRING,
    eventname STRING,
    awsregion STRING,
    sourceipaddress STRING,
    useragent STRING,
    errorcode STRING,
    errormessage STRING,
    requestparameters STRING,
    responseelements STRING,
    additionaleventdata STRING,
    requestid STRING,
    eventid STRING,
    readonly STRING,
    resources ARRAY<STRUCT<arn: STRING, accountid: STRING, type: STRING>>,
    eventtype STRING,
    apiversion STRING,
    recipientaccountid STRING,
    serviceeventdetails STRING,
    sharedeventid STRING,
    vpcendpointid STRING,
    vpcendpointaccountid STRING,
    eventcategory STRING,
    addendum STRUCT<reason: STRING, updatedfields: STRING, originalrequestid: STRING,
        originaleventid: STRING>,
    sessioncredentialfromconsole STRING,
    edgedevicedetails STRING,
    tlsdetails STRUCT<tlsversion: STRING, ciphersuite: STRING, clientprovidedhostheader: STRING>,
    `timestamp` STRING
)
"""

WIDE_SINCE = datetime(2000, 1, 1, tzinfo=UTC)
WIDE_UNTIL = datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC)


def _schema() -> list[tuple[str, Any]]:
    create = sqlglot.parse_one(ATHENA_DDL, read="athena")
    return [(column.name, column.args["kind"]) for column in create.this.expressions]


def _scalar_text(value: Any) -> str | None:
    """What the SerDe puts in a STRING column: text as is, anything else as its JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _project(value: Any, kind: Any) -> Any:
    """``value`` (from a CloudTrail record) as a value of the column type ``kind``."""
    if value is None:
        return None
    if kind.this == exp.DataType.Type.STRUCT:
        if not isinstance(value, dict):
            return None
        lowered = {str(k).lower(): v for k, v in value.items()}
        return {f.name: _project(lowered.get(f.name), f.args["kind"]) for f in kind.expressions}
    if kind.this == exp.DataType.Type.ARRAY:
        items = value if isinstance(value, list) else [value]
        return [_project(item, kind.expressions[0]) for item in items]
    if kind.this == exp.DataType.Type.MAP:
        return {str(k): _scalar_text(v) for k, v in value.items()} if isinstance(value, dict) else None
    return _scalar_text(value)


def athena_row(record: dict[str, Any], schema: list[tuple[str, Any]]) -> dict[str, Any]:
    """The table row Athena reads from ``record``: columns by lower-cased key, the day partition."""
    lowered = {key.lower(): value for key, value in record.items()}
    row = {name: _project(lowered.get(name), kind) for name, kind in schema if name != "timestamp"}
    row["timestamp"] = str(record.get("eventTime", ""))[:10].replace("-", "/")
    return row


# The benchmark profiles (sparse, dense, data-events) where the generator has them.
PROFILES: tuple[str, ...] = getattr(gen_archive, "PROFILES", ("sparse",))


def _archive_records(tmp: Path, profile: str) -> list[dict[str, Any]]:
    options = {} if profile == "sparse" else {"profile": profile}
    # A seed per profile: the same seed would repeat event IDs across the profiles.
    manifest = gen_archive.generate(str(tmp), 20_000, seed=11 + PROFILES.index(profile), jobs=1, **options)
    records: list[dict[str, Any]] = []
    for path in manifest["files"]:
        with gzip.open(tmp / path, "rt") as handle:
            records.extend(json.load(handle)["Records"])
    return records


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict[str, Any], DetectorContext]]:
    """Every dataset case with its context, then a generated archive of each profile (no context)."""
    corpus = [(case.record, case.detector) for case in load_cases()]
    for profile in PROFILES:
        records = _archive_records(tmp_path_factory.mktemp(f"archive-{profile}"), profile)
        corpus.extend((record, NO_CONTEXT) for record in records)
    return corpus


@pytest.fixture(scope="module")
def table(
    corpus: list[tuple[dict[str, Any], DetectorContext]], tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """A DuckDB connection holding ``cloudtrail_logs_pp`` loaded with the corpus."""
    schema = _schema()
    connection = duckdb.connect()
    connection.execute(sqlglot.transpile(ATHENA_DDL, read="athena", write="duckdb")[0])
    types = {row[0]: row[1] for row in connection.execute("DESCRIBE cloudtrail_logs_pp").fetchall()}
    path = tmp_path_factory.mktemp("table") / "rows.jsonl"
    with open(path, "w") as handle:
        for record, _ in corpus:
            handle.write(json.dumps(athena_row(record, schema)) + "\n")
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in types.items())
    connection.execute(
        f"INSERT INTO cloudtrail_logs_pp SELECT * FROM read_json('{path}', format='newline_delimited', "
        f"columns={{{columns}}})"
    )
    return connection


def _run(connection: Any, sql: str) -> list[dict[str, Any]]:
    statement = sqlglot.parse_one(sql, read="athena")  # the query must be valid Athena SQL
    cursor = connection.execute(statement.sql(dialect="duckdb"))
    names = [description[0] for description in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _as_csv(rows: list[dict[str, Any]]) -> str:
    """Athena's CSV output: a header, every value quoted, nulls as empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(rows[0].keys())
    for row in rows:
        writer.writerow("" if value is None else value for value in row.values())
    return buffer.getvalue()


def _as_get_query_results(rows: list[dict[str, Any]]) -> str:
    """Athena's GetQueryResults JSON: the header row first, every value VarCharValue text."""
    names = list(rows[0])

    def cells(values: Iterator[Any]) -> list[dict[str, str]]:
        return [{} if value is None else {"VarCharValue": str(value)} for value in values]

    page = {
        "ResultSet": {
            "Rows": [{"Data": cells(iter(names))}, *({"Data": cells(iter(row.values()))} for row in rows)],
            "ResultSetMetadata": {"ColumnInfo": [{"Name": name, "Type": "varchar"} for name in names]},
        }
    }
    return json.dumps(page)


def _as_json_lines(rows: list[dict[str, Any]]) -> str:
    """Athena UNLOAD ... WITH (format = 'JSON'): one object per row, nulls left out."""
    return "".join(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n" for row in rows)


def _contexts(corpus: list[tuple[dict[str, Any], DetectorContext]]) -> list[DetectorContext]:
    return list(dict.fromkeys(context for _, context in corpus))


def test_sql_selects_every_flagged_record_and_results_give_the_same_findings(
    corpus: list[tuple[dict[str, Any], DetectorContext]], table: Any
) -> None:
    flagged_total = 0
    for context in _contexts(corpus):
        sql = print_sql("athena", WIDE_SINCE, WIDE_UNTIL, table="cloudtrail_logs_pp", context=context)
        rows = _run(table, sql)
        selected = {row["eventid"] for row in rows}
        # The classifier's findings for every record, under this context.
        raw = {record["eventID"]: classify(record, context) for record, _ in corpus}
        assert len(raw) == len(corpus)  # event IDs are unique, so rows map back to their record
        flagged = {event_id for event_id, findings in raw.items() if findings}
        assert flagged, context
        assert flagged <= selected, (context, sorted(flagged - selected))
        flagged_total += len(flagged)
        # The query is selective: far fewer rows than the table holds.
        assert len(rows) < len(corpus) / 10
        for text in (_as_csv(rows), _as_get_query_results(rows), _as_json_lines(rows)):
            mapped = {record["eventID"]: classify(record, context) for record in read_records(text)}
            assert set(mapped) == selected
            for event_id in selected:
                assert mapped[event_id] == raw[event_id], event_id
    assert flagged_total > 100


def test_acl_texts_cover_the_acl_readers_forms() -> None:
    assert all(header.startswith(ACL_TEXTS[1]) for header in GRANT_HEADERS)
    sql = print_sql("athena", WIDE_SINCE, WIDE_UNTIL, table="t")
    # Calls only the ACL rule reads, and only with an ACL (ownership_controls reads CreateBucket too).
    names = ", ".join(f"'{name}'" for name in sorted(acl_optional_names()))
    assert names == "'CopyObject', 'CreateMultipartUpload', 'PutObject'"
    assert f"(eventname IN ({names}) AND (" in sql


def test_the_query_is_derived_from_the_registry() -> None:
    sql = print_sql("athena", WIDE_SINCE, WIDE_UNTIL, table="t")
    markers = event_markers(NO_CONTEXT)
    for name in watched_event_names(NO_CONTEXT):
        assert f"'{name}'" in sql
    assert markers and all(
        f"strpos(requestparameters, '{text}')" in sql for texts in markers.values() for text in texts
    )
    # Names whose rules need detector context are left out without it, and come in with it.
    with_trail = print_sql(
        "athena", WIDE_SINCE, WIDE_UNTIL, table="t", context=DetectorContext(trail_key_arn="k")
    )
    assert "'DisableKey'" not in sql and "'DisableKey'" in with_trail


def test_time_window_is_partition_friendly(
    corpus: list[tuple[dict[str, Any], DetectorContext]], table: Any
) -> None:
    since, until = datetime(2024, 3, 1, 0, 30, tzinfo=UTC), datetime(2024, 3, 1, 1, 15, tzinfo=UTC)
    sql = print_sql("athena", since, until, table="cloudtrail_logs_pp")
    where = sqlglot.parse_one(sql, read="athena").args["where"].sql(dialect="athena")
    assert "\"timestamp\" BETWEEN '2024/03/01' AND '2024/03/02'" in where
    low, high = "2024-03-01T00:30:00Z", "2024-03-01T01:15:00Z"
    inside = {
        record["eventID"]
        for record, context in corpus
        if low <= record["eventTime"] <= high and classify(record, context)
    }
    rows = _run(table, sql)
    assert inside and inside <= {row["eventid"] for row in rows}
    assert all(low <= row["eventtime"] <= high for row in rows)


def test_cloudtrail_lake_sql_parses_as_trino() -> None:
    sql = print_sql("cloudtrail-lake", WIDE_SINCE, WIDE_UNTIL, table="abcd1234-ef56")
    statement = sqlglot.parse_one(sql.replace("abcd1234-ef56", '"abcd1234-ef56"'), read="trino")
    assert statement.find(exp.In) is not None
    assert "eventtime >= '2000-01-01 00:00:00'" in sql
    assert '"timestamp"' not in sql


def _lake_row(record: dict[str, Any]) -> list[dict[str, str]]:
    """A CloudTrail Lake GetQueryResults row: maps of strings (nested values as JSON), timestamps."""

    def lake_time(text: str) -> str:
        return text.replace("T", " ").replace("Z", ".000")

    def lower(value: Any) -> Any:
        if isinstance(value, dict):
            return {k.lower(): lower(v) for k, v in value.items()}
        if isinstance(value, list):
            return [lower(v) for v in value]
        return value

    cells: list[dict[str, str]] = []
    for key, value in record.items():
        name = key.lower()
        if value is None:
            continue
        if name in ("requestparameters", "responseelements", "additionaleventdata") and isinstance(
            value, dict
        ):
            flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
            cells.append({name: json.dumps(flat)})
        elif name in ("useridentity", "resources", "tlsdetails"):
            identity = lower(value)
            attributes = (
                identity.get("sessioncontext", {}).get("attributes", {}) if name == "useridentity" else {}
            )
            if isinstance(attributes, dict) and "creationdate" in attributes:
                attributes["creationdate"] = lake_time(attributes["creationdate"])
            cells.append({name: json.dumps(identity)})
        elif name == "eventtime":
            cells.append({name: lake_time(value)})
        else:
            cells.append({name: value if isinstance(value, str) else json.dumps(value)})
    return cells


def test_cloudtrail_lake_results_give_the_same_findings() -> None:
    cases = [case for case in load_cases() if classify(case.record, case.detector)]
    page = {"QueryStatus": "FINISHED", "QueryResultRows": [_lake_row(case.record) for case in cases]}
    records = list(read_records(json.dumps(page)))
    assert len(records) == len(cases)
    for case, record in zip(cases, records, strict=True):
        assert classify(record, case.detector) == classify(case.record, case.detector), case.id


def test_row_mapping_restores_the_record_shape() -> None:
    row = {
        "eventname": "PutBucketAcl",
        "eventtime": "2024-03-01T10:00:00Z",
        "useridentity": json.dumps({"type": "IAMUser", "principalid": "AIDA", "sessioncontext": None}),
        "resources": json.dumps([{"arn": "arn:aws:s3:::b", "accountid": "1", "type": "AWS::S3::Bucket"}]),
        "requestparameters": json.dumps({"bucketName": "b", "x-amz-acl": ["public-read"]}),
        "errorcode": "",
    }
    record = row_to_record(row)
    assert record == {
        "eventName": "PutBucketAcl",
        "eventTime": "2024-03-01T10:00:00Z",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDA"},
        "resources": [{"ARN": "arn:aws:s3:::b", "accountId": "1", "type": "AWS::S3::Bucket"}],
        "requestParameters": {"bucketName": "b", "x-amz-acl": ["public-read"]},
    }


def test_entry_points(tmp_path: Path, table: Any) -> None:
    import argparse

    out = io.StringIO()
    args = argparse.Namespace(print_sql="athena", since="2024-03-01", until="2024-03-02", table=None)
    assert main_sql(args, now=datetime(2024, 4, 1, tzinfo=UTC), stdout=out) == 0
    assert "FROM cloudtrail_logs_pp" in out.getvalue()
    rows = _run(table, print_sql("athena", WIDE_SINCE, WIDE_UNTIL))
    results = tmp_path / "results.csv"
    results.write_text(_as_csv(rows))
    (tmp_path / "bad.json").write_text("[1, 2]")
    out, err = io.StringIO(), io.StringIO()
    status = main_results(
        [str(results), str(tmp_path / "bad.json"), str(tmp_path / "none")], stdout=out, stderr=err
    )
    assert status == 2
    lines = out.getvalue().splitlines()
    assert lines and all(json.loads(line)["eventID"] for line in lines)
    assert "bad.json" in err.getvalue() and "none" in err.getvalue()


def test_the_cli_prints_the_query_and_classifies_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from handlers.offline.detect_cli import main

    assert main(["--print-sql", "athena", "--since", "2024-03-01", "--until", "2024-03-02"]) == 0
    assert "FROM cloudtrail_logs_pp" in capsys.readouterr().out
    assert main(["--print-sql", "cloudtrail-lake", "--since", "2024-03-01", "--table", "eds-1"]) == 0
    assert "FROM eds-1" in capsys.readouterr().out
    assert main(["--print-sql", "athena"]) == 2  # needs --since
    assert main(["--print-sql", "athena", "--since", "2099-01-01"]) == 2  # in the future
    assert main(["--table", "t", "x.json"]) == 2
    results = tmp_path / "r.csv"
    results.write_text(
        '"eventname","eventsource","requestparameters","eventid"\n'
        '"PutBucketAcl","s3.amazonaws.com","{""bucketName"":""b"",""x-amz-acl"":""public-read""}","e1"\n'
    )
    capsys.readouterr()
    assert main(["--from-query-results", str(results)]) == 0
    assert '"eventID":"e1"' in capsys.readouterr().out
    assert main(["--from-query-results", "--format", "ocsf", str(results)]) == 0
    assert '"class_uid":2004' in capsys.readouterr().out.replace(" ", "")
    assert main(["--from-query-results", str(tmp_path / "missing.csv")]) == 2
    assert main(["--from-query-results"]) == 2
