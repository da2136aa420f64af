"""The demo's output: one table row per event, then a summary against the labels.

ASCII only, fixed widths, so it reads the same in a terminal, a CI log and the README.
"""

from __future__ import annotations

from demo.replay import NEGATIVE_VERDICTS, POSITIVE_VERDICTS, EventRow, PassResult, latencies, problems

COLUMNS = (
    ("#", 3),
    ("event", 30),
    ("form", 9),
    ("rule(s) matched", 28),
    ("verdict", 13),
    ("sev", 8),
    ("remediation", 12),
    ("BPA after", 9),
    ("actor", 11),
    ("review", 17),
    ("alert subject", 0),  # the rest of the line
)
SUBJECT_WIDTH = 70


def _cell(text: str, width: int) -> str:
    if width == 0:
        return text if len(text) <= SUBJECT_WIDTH else text[: SUBJECT_WIDTH - 3] + "..."
    return (text if len(text) <= width else text[: width - 1] + "~").ljust(width)


def row_cells(index: int, row: EventRow) -> list[str]:
    """The table cells of one row (the verdict cell marks a disagreement with the label)."""
    verdict = row.verdict if row.verdict == row.label else f"{row.verdict}!={row.label}"
    routes = "+".join(row.routes) or "-"
    return [
        str(index),
        row.event_name,
        row.form,
        routes,
        verdict,
        row.severity,
        row.remediation,
        row.bpa_after,
        "trusted" if row.trusted else row.history,
        row.review,
        row.subject or ("(no alert)" if row.routes else ""),
    ]


def table(rows: list[EventRow], only_acted: bool = False) -> str:
    """The per-event table; ``only_acted`` keeps rows whose remediation did or would do something."""
    header = " ".join(_cell(name, width) for name, width in COLUMNS).rstrip()
    lines = [header, "-" * min(len(header) + SUBJECT_WIDTH - len("alert subject"), 190)]
    for index, row in enumerate(rows, 1):
        if only_acted and row.remediation not in ("applied", "would-apply", "failed", "unverified"):
            continue
        cells = row_cells(index, row)
        lines.append(" ".join(_cell(c, w) for c, (_, w) in zip(cells, COLUMNS, strict=True)).rstrip())
    return "\n".join(lines)


def confusion(rows: list[EventRow]) -> dict[str, int]:
    """True/false positives and negatives: labelled positive/negative vs. a positive alert arriving."""
    counts = {"TP": 0, "FN": 0, "TN": 0, "FP": 0, "undetermined": 0, "agree": 0}
    for row in rows:
        alerted = row.verdict in POSITIVE_VERDICTS
        if row.label in POSITIVE_VERDICTS:
            counts["TP" if alerted else "FN"] += 1
        elif row.label in NEGATIVE_VERDICTS:
            counts["FP" if alerted else "TN"] += 1
        else:
            counts["undetermined"] += 1
        counts["agree"] += row.verdict == row.label
    return counts


def _ms(value: tuple[float, float, int] | None) -> str:
    if value is None:
        return "none"
    p50, worst, count = value
    return f"p50 {p50 * 1000:.0f} ms, max {worst * 1000:.0f} ms over {count}"


def summary(result: PassResult) -> str:
    """The pass's summary: counts against the labels, alerts, remediation, latency and problems."""
    rows = result.rows
    c = confusion(rows)
    routed = sum(bool(r.routes) for r in rows)
    alerts = sum(len(r.alerts) for r in rows)
    applied = sum(r.remediation == "applied" for r in rows)
    would = sum(r.remediation == "would-apply" for r in rows)
    lat = latencies(rows)
    found = problems(result)
    first_time = sum(r.history == "first-time" for r in rows)
    seen = sum(r.history == "seen-before" for r in rows)
    reviews = [r for r in rows if r.review != "-"]
    lines = [
        f"pass {result.mode}: {len(rows)} events in {result.seconds:.1f} s; {routed} routed by the rules, "
        f"{alerts} alerts on the topic, {applied} buckets/accounts closed, {would} would be closed",
        f"  against the labels: TP {c['TP']}  FN {c['FN']}  TN {c['TN']}  FP {c['FP']}  "
        f"(undetermined {c['undetermined']});  verdict = label for {c['agree']}/{len(rows)}",
        f"  actor history in the alert: {first_time} first-time, {seen} seen before, "
        f"{sum(r.trusted for r in rows)} trusted automation",
        f"  exposure reviews (follow-up alerts): {len(reviews)}"
        + (f"; e.g. {reviews[0].review_summary}" if reviews else ""),
        *_sink_lines(result),
        f"  event -> alert:       {_ms(lat['alert'])}",
        f"  event -> remediation: {_ms(lat['remediation'])}",
        "  (emulator latency: the API call to the alert on the subscription; AWS adds CloudTrail's delivery)",
    ]
    if found:
        lines.append(f"  PROBLEMS ({len(found)}):")
        lines += [f"    - {p}" for p in found[:40]]
        if len(found) > 40:
            lines.append(f"    ... and {len(found) - 40} more")
    else:
        lines.append("  no problems: every verdict matches its label")
    return "\n".join(lines)


def _sink_lines(result: PassResult) -> list[str]:
    """What reached the other sinks (demo/sink_capture.py)."""
    sinks = result.sinks
    if sinks is None:
        return []
    workflow = ", ".join(f"{n} {status}" for status, n in sorted(sinks.workflow.items())) or "none"
    return [
        f"  other sinks: {sinks.events} events on the default bus, {sinks.chat} chat notifications, "
        f"{sinks.findings} Security Hub findings ({workflow})"
    ]
