"""``detect --print-sql athena|cloudtrail-lake``: one query that selects only the records some rule reads.

An organisation's trail over a year is tens of billions of events; users keep it queryable in
Athena (the documented CloudTrail table, JSON files partitioned by day) or in CloudTrail Lake.
The query printed here runs there and returns only the candidate records, with every column the
classifier reads; ``detect --from-query-results FILE...`` (:mod:`handlers.offline.query_results`) maps
each result row back to a CloudTrail record and classifies it exactly as ``detect`` classifies
the raw files.

The query is derived from the same registry as :mod:`handlers.offline.prefilter`, never hand-listed:

* ``eventname IN (...)``: the names of :func:`handlers.detection.rules.watched_event_names` for the
  detector context (rules that need context the run lacks stay silent, so their calls are left out);
* a name with markers (:func:`handlers.detection.rules.event_markers`, e.g. ``PutBucketTagging`` only when
  the request names the approval tag) is selected only when ``requestparameters`` holds every
  one of its texts, as the byte-level prefilter requires of a file;
* the window ``[since, until]`` on ``eventtime``, and on Athena also on the day partition
  (``timestamp``, ``yyyy/MM/dd``, of the documented partition-projection table), widened by one
  day at the end because CloudTrail files a record by its delivery day.

Struct and map columns are selected as JSON text (``json_format(CAST(col AS JSON))``), so a CSV
result keeps field names and nesting (Athena engine v3 and CloudTrail Lake are Trino: a ROW cast
to JSON is an object keyed by field name).

Cost: Athena bills $5 per TB scanned (10 MB minimum per query). CloudTrail JSON is not columnar,
so a query scans every byte of the day partitions it touches whatever columns it selects: the
partition predicate is what keeps the bill down. CloudTrail Lake bills per GB scanned by the
query ($0.005/GB, i.e. $5 per TB, at the time of writing) over the event data store's columnar
storage, limited by the ``eventtime`` range. Standard library only (part of the Lambda zip).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Literal, TextIO

from handlers.detection.rules import RULES_BY_EVENT, acl_grants, event_markers, watched_event_names
from handlers.detection.rules import _can_fire as can_fire
from handlers.detection.rules.detector_context import NO_CONTEXT, DetectorContext
from handlers.offline.prefilter import ACL_TEXTS  # the record-level prefilter's texts: one list

Engine = Literal["athena", "cloudtrail-lake"]
ENGINES: tuple[Engine, ...] = ("athena", "cloudtrail-lake")
Partitioning = Literal["timestamp", "none"]

# The documented partition-projection table's name, and CloudTrail Lake's placeholder for the
# event data store ID (what its console's sample queries use).
DEFAULT_TABLE: dict[Engine, str] = {"athena": "cloudtrail_logs_pp", "cloudtrail-lake": "$EDS_ID"}

# Columns of the documented Athena CloudTrail table (and CloudTrail Lake's event schema) that the
# classifier or a finding reads, in record order. Those holding JSON text in Athena stay as they are.
SCALAR_COLUMNS: tuple[str, ...] = (
    "eventversion",
    "eventtime",
    "eventsource",
    "eventname",
    "awsregion",
    "sourceipaddress",
    "useragent",
    "errorcode",
    "errormessage",
)
# Athena: JSON text already (STRING columns); CloudTrail Lake: map<string,string>.
JSON_TEXT_COLUMNS: tuple[str, ...] = ("requestparameters", "responseelements", "additionaleventdata")
TRAILING_COLUMNS: tuple[str, ...] = (
    "requestid",
    "eventid",
    "eventtype",
    "recipientaccountid",
    "sharedeventid",
    "vpcendpointid",
)
# Structs and arrays of structs in both schemas: selected as JSON text.
STRUCT_COLUMNS: tuple[str, ...] = ("useridentity", "resources", "tlsdetails")

PARTITION_FORMAT = "%Y/%m/%d"  # projection.timestamp.format = 'yyyy/MM/dd'


def _quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    """A table name: kept as given when it is a plain (possibly dotted) name, else double-quoted."""
    parts = name.split(".")
    if all(part and (part.replace("_", "").isalnum()) for part in parts):
        return name
    return '"' + name.replace('"', '""') + '"'


def _stamp(moment: datetime, engine: Engine) -> str:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    # Athena: eventtime is the record's ISO text (2024-03-01T12:00:00Z), ordered as text.
    # CloudTrail Lake: eventtime is a timestamp, compared with 'YYYY-MM-DD HH:MM:SS' as documented.
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ" if engine == "athena" else "%Y-%m-%d %H:%M:%S")


def _column(name: str, engine: Engine) -> str:
    if name in STRUCT_COLUMNS or (engine == "cloudtrail-lake" and name in JSON_TEXT_COLUMNS):
        return f"json_format(CAST({name} AS JSON)) AS {name}"
    return name


def selected_columns(engine: Engine) -> list[str]:
    """The SELECT list: every column the classifier and a finding read."""
    names = (*SCALAR_COLUMNS[:1], "useridentity", *SCALAR_COLUMNS[1:], *JSON_TEXT_COLUMNS)
    names = (*names, *TRAILING_COLUMNS[:2], "resources", *TRAILING_COLUMNS[2:], "tlsdetails")
    return [_column(name, engine) for name in names]


def acl_optional_names(context: DetectorContext = NO_CONTEXT) -> frozenset[str]:
    """Names only the ACL rule reads (given ``context``) and that carry an ACL only optionally
    (CreateBucket, PutObject, CopyObject): they find something only with an ACL in the request."""
    names = set()
    for name in set(acl_grants.EVENT_NAMES) - acl_grants.ACL_REQUIRED:
        readers = RULES_BY_EVENT.get((acl_grants.EVENT_SOURCE, name), ())
        if [m for m in readers if can_fire(m, context)] == [acl_grants]:
            names.add(name)
    return frozenset(names)


def name_predicate(engine: Engine, context: DetectorContext = NO_CONTEXT) -> str:
    """``eventname IN (...)`` for the names some rule can act on; conditional names with their texts.

    A name with markers needs every one of its texts in ``requestparameters``; an optional-ACL call
    needs one of the ACL request forms there (any case), or a ``\\u`` escape that may spell one.
    """
    names = watched_event_names(context)
    markers = event_markers(context)
    optional = acl_optional_names(context) - set(markers)
    plain = sorted(name for name in names if name not in markers and name not in optional)
    terms = [f"eventname IN ({', '.join(_quote(name) for name in plain)})"] if plain else []
    params = "requestparameters" if engine == "athena" else "json_format(CAST(requestparameters AS JSON))"
    for name in sorted(markers):
        if name not in names:
            continue
        texts = " AND ".join(f"strpos({params}, {_quote(text)}) > 0" for text in markers[name])
        terms.append(f"(eventname = {_quote(name)} AND {texts})")
    if optional:
        forms = " OR ".join(
            [f"strpos(lower({params}), {_quote(text.lower())}) > 0" for text in ACL_TEXTS]
            + [f"strpos({params}, {_quote(chr(92) + 'u')}) > 0"]
        )
        listed = ", ".join(_quote(name) for name in sorted(optional))
        terms.append(f"(eventname IN ({listed}) AND ({forms}))")
    return "(" + "\n    OR ".join(terms) + ")" if terms else "FALSE"


def time_predicates(
    engine: Engine, since: datetime, until: datetime, partitioning: Partitioning = "timestamp"
) -> list[str]:
    """The window on ``eventtime`` and, on Athena, on the day partition (partition pruning)."""
    terms = []
    if engine == "athena" and partitioning == "timestamp":
        first = since.astimezone(UTC) if since.tzinfo else since
        # A record is filed under the day its file is delivered: up to about a day after the event.
        last = (until.astimezone(UTC) if until.tzinfo else until) + timedelta(days=1)
        terms.append(
            f'"timestamp" BETWEEN {_quote(first.strftime(PARTITION_FORMAT))} '
            f"AND {_quote(last.strftime(PARTITION_FORMAT))}"
        )
    terms.append(f"eventtime >= {_quote(_stamp(since, engine))}")
    terms.append(f"eventtime <= {_quote(_stamp(until, engine))}")
    return terms


def print_sql(
    engine: Engine,
    since: datetime,
    until: datetime,
    *,
    table: str | None = None,
    context: DetectorContext = NO_CONTEXT,
    partitioning: Partitioning = "timestamp",
) -> str:
    """The query for ``engine`` over ``table`` selecting the records some rule reads in ``[since, until]``.

    ``table``: the Athena table (default ``cloudtrail_logs_pp``, the documented partition-projection
    table; ``partitioning="none"`` for a table without the ``timestamp`` partition) or the
    CloudTrail Lake event data store ID (default the ``$EDS_ID`` placeholder).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if since > until:
        raise ValueError("since is after until")
    columns = ",\n  ".join(selected_columns(engine))
    where = "\n  AND ".join(
        [*time_predicates(engine, since, until, partitioning), name_predicate(engine, context)]
    )
    # CloudTrail Lake names the event data store by its bare ID (hyphens and all), as its docs do.
    source = (
        _identifier(table or DEFAULT_TABLE[engine]) if engine == "athena" else table or DEFAULT_TABLE[engine]
    )
    return f"SELECT\n  {columns}\nFROM {source}\nWHERE {where}\nORDER BY eventtime, eventid\n"


def main_sql(
    args: argparse.Namespace,
    context: DetectorContext = NO_CONTEXT,
    *,
    now: datetime | None = None,
    stdout: TextIO | None = None,
) -> int:
    """``detect --print-sql ENGINE --since T [--until T] [--table NAME]``: print the query; 0.

    ``args.print_sql`` is the engine, ``args.since``/``args.until`` the window's text (the forms
    of ``detect s3://``), ``args.table`` optional. Raises ``detect_sources.SourceError`` on a bad
    window, and ``ValueError`` on a missing ``--since`` (the caller turns both into exit 2).
    """
    from handlers.offline.detect_sources import (
        window,  # the same window forms as detect s3:// (boto3: CLI only)
    )

    if not args.since:
        raise ValueError("--print-sql needs --since (an unbounded query scans the whole trail)")
    since, until = window(args.since, args.until, now or datetime.now(UTC))
    assert since is not None
    out = stdout if stdout is not None else sys.stdout
    out.write(print_sql(args.print_sql, since, until, table=getattr(args, "table", None), context=context))
    return 0
