"""A small local Security Hub with AWS's documented semantics, for the calls moto lacks or bends.

moto 5 implements ``BatchImportFindings`` and ``GetFindings`` but not ``BatchUpdateFindings``;
its ``GetFindings`` ignores ``Filters``, and its import overwrites ``Workflow`` on an existing
finding. AWS documents otherwise (API reference: BatchImportFindings, BatchUpdateFindings,
GetFindings; user guide "BatchImportFindings for finding providers"):

- an import creates the finding, or updates one the provider created; after creation, the
  import's ``Note``, ``UserDefinedFields``, ``VerificationState`` and ``Workflow`` are ignored;
- ``BatchUpdateFindings`` sets ``Workflow`` and ``Note``; an unknown identifier comes back in
  ``UnprocessedFindings`` (``ErrorCode: FindingNotFound``), the rest are processed;
- ``GetFindings`` filters on ``Id`` (``PREFIX``/``EQUALS``), ``ProductArn`` and ``RecordState``
  (``EQUALS``), and pages with ``NextToken``.

Every request is validated against botocore's model of the operation first (what a real client
would refuse never reaches AWS), and every finding against :func:`asff_problems`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from datetime import datetime
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

_MODEL = botocore.session.get_session().get_service_model("securityhub")
_NOT_UPDATED_BY_IMPORT = ("Note", "UserDefinedFields", "VerificationState", "Workflow")
_TYPE = re.compile(r"^[^/]+(/[^/]+){0,2}$")
_NAMESPACES = (
    "Software and Configuration Checks",
    "TTPs",
    "Effects",
    "Unusual Behaviors",
    "Sensitive Data Identifications",
)
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
REQUIRED = (
    "AwsAccountId", "CreatedAt", "Description", "GeneratorId", "Id", "ProductArn", "Resources",
    "SchemaVersion", "Title", "UpdatedAt",
)  # fmt: skip


def asff_problems(finding: dict[str, Any]) -> list[str]:
    """Why ``finding`` is not valid ASFF (AWS's required attributes, types and documented limits)."""
    problems = [f"missing {name}" for name in REQUIRED if name not in finding]
    shape = _MODEL.operation_model("BatchImportFindings").input_shape
    report = ParamValidator().validate({"Findings": [finding]}, shape)
    if report.has_errors():
        problems.append(report.generate_report())
    if "Severity" not in finding and "Severity" not in finding.get("FindingProviderFields", {}):
        problems.append("no Severity")
    types = finding.get("Types") or finding.get("FindingProviderFields", {}).get("Types")
    if not types:
        problems.append("no Types")
    for kind in types or []:
        if not _TYPE.match(kind) or kind.split("/")[0] not in _NAMESPACES:
            problems.append(f"Type {kind!r} is not namespace/category/classifier")
    for name in ("CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt"):
        if name in finding and not _TIMESTAMP.match(finding[name]):
            problems.append(f"{name} {finding[name]!r} is not ISO 8601")
    limits = {"Title": 256, "Description": 1024, "Id": 512, "GeneratorId": 512}
    problems += [f"{k} longer than {n}" for k, n in limits.items() if len(str(finding.get(k, ""))) > n]
    fields = finding.get("ProductFields") or {}
    if len(fields) > 50 or any(len(k) > 128 or len(v) > 2048 for k, v in fields.items()):
        problems.append("ProductFields over its limits")
    text = finding.get("Remediation", {}).get("Recommendation", {}).get("Text", "")
    if len(text) > 512:
        problems.append("Remediation.Recommendation.Text longer than 512")
    if not 1 <= len(finding.get("Resources") or []) <= 32:
        problems.append("Resources must hold 1 to 32 resources")
    if len(json.dumps(finding).encode()) > 240 * 1024:
        problems.append("finding over 240 KB")
    label = (finding.get("Severity") or {}).get("Label")
    if label not in ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"):
        problems.append(f"Severity.Label {label!r}")
    if (finding.get("Workflow") or {}).get("Status", "NEW") not in (
        "NEW",
        "NOTIFIED",
        "RESOLVED",
        "SUPPRESSED",
    ):
        problems.append("Workflow.Status")
    if finding.get("RecordState", "ACTIVE") not in ("ACTIVE", "ARCHIVED"):
        problems.append("RecordState")
    return problems


class SecurityHubFake:
    """The account's findings, answering the three calls the detector makes."""

    def __init__(self) -> None:
        self.findings: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def install(self, world: Any) -> None:
        """Answer the handler's Security Hub calls in ``world`` (tests/response_fixtures.World)."""
        for operation, method in (
            ("BatchImportFindings", self.batch_import_findings),
            ("BatchUpdateFindings", self.batch_update_findings),
            ("GetFindings", self.get_findings),
        ):
            world.answer(
                "securityhub", operation, lambda params, m=method, o=operation: self._call(o, m, params)
            )

    def _call(self, operation: str, method: Any, params: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(params["body"] or b"{}")
        report = ParamValidator().validate(body, _MODEL.operation_model(operation).input_shape)
        assert not report.has_errors(), report.generate_report()
        self.requests.append((operation, body))
        return method(body)

    def batch_import_findings(self, body: dict[str, Any]) -> dict[str, Any]:
        failed = []
        for finding in body["Findings"]:
            problems = asff_problems(finding)
            if problems:
                failed.append(
                    {
                        "Id": finding.get("Id", ""),
                        "ErrorCode": "InvalidInput",
                        "ErrorMessage": "; ".join(problems),
                    }
                )
                continue
            existing = self.findings.get(finding["Id"])
            if existing is None:
                stored = copy.deepcopy(finding)
                stored.setdefault("Workflow", {"Status": "NEW"})
                stored.setdefault("RecordState", "ACTIVE")
                self.findings[finding["Id"]] = stored
                continue
            kept = {k: existing[k] for k in _NOT_UPDATED_BY_IMPORT if k in existing}
            self.findings[finding["Id"]] = {**copy.deepcopy(finding), **kept}
        return {
            "FailedCount": len(failed),
            "SuccessCount": len(body["Findings"]) - len(failed),
            "FailedFindings": failed,
        }

    def batch_update_findings(self, body: dict[str, Any]) -> dict[str, Any]:
        processed, unprocessed = [], []
        for ident in body["FindingIdentifiers"]:
            finding = self.findings.get(ident["Id"])
            if finding is None or finding["ProductArn"] != ident["ProductArn"]:
                unprocessed.append(
                    {"FindingIdentifier": ident, "ErrorCode": "FindingNotFound", "ErrorMessage": "not found"}
                )
                continue
            if "Workflow" in body:
                finding["Workflow"] = {"Status": body["Workflow"]["Status"]}
            if "Note" in body:
                finding["Note"] = {**body["Note"], "UpdatedAt": datetime.now().isoformat()}
            processed.append(ident)
        return {"ProcessedFindings": processed, "UnprocessedFindings": unprocessed}

    def get_findings(self, body: dict[str, Any]) -> dict[str, Any]:
        filters = body.get("Filters") or {}

        def matches(finding: dict[str, Any]) -> bool:
            for name, conditions in filters.items():
                value = str(finding.get(name, ""))
                for condition in conditions:
                    wanted, how = condition["Value"], condition["Comparison"]
                    if (how == "EQUALS" and value != wanted) or (
                        how == "PREFIX" and not value.startswith(wanted)
                    ):
                        return False
                    if how not in ("EQUALS", "PREFIX"):
                        raise AssertionError(f"comparison {how} not faked")
            return True

        found = [f for f in self.findings.values() if matches(f)]
        start = int(base64.b64decode(body["NextToken"])) if body.get("NextToken") else 0
        size = body.get("MaxResults", 100)
        page: dict[str, Any] = {"Findings": copy.deepcopy(found[start : start + size])}
        if start + size < len(found):
            page["NextToken"] = base64.b64encode(str(start + size).encode()).decode()
        return page

    def status(self, finding_id: str) -> tuple[str, str]:
        """The finding's (workflow status, record state)."""
        finding = self.findings[finding_id]
        return finding["Workflow"]["Status"], finding["RecordState"]
