"""One finding as an OCSF Detection Finding (class 2004, category 2 Findings): ``detect --format ocsf``.

:func:`detection_finding` turns one :class:`handlers.detection.finding.Finding` dict into one OCSF
event, a plain JSON-serialisable dict, for a SIEM or data lake (Amazon Security Lake,
Splunk, Sentinel, ...) that reads OCSF. Standard library only: it ships in the Lambda zip.
The schema version is :data:`OCSF_VERSION` (the version the test suite validates against
with ``py-ocsf-models``). Profile: ``cloud`` (``api``, ``cloud``).

Every field of a finding is treated as attacker-written (a finding's text is copied from a
CloudTrail record the caller wrote). The function never raises: a value of the wrong type is
dropped (numbers where text is expected become text), text is capped (:data:`TEXT_LIMIT`,
:data:`DESC_LIMIT`, ...; a cut value ends with ``…[truncated: N chars]``), lone surrogates
become U+FFFD, and control, line-separator, zero-width and bidi characters are escaped
visibly (``\\x1b``, ``\\u202e``) so they can neither break a log line nor hide text. An
identifier that fails AWS's pattern (account, region, bucket, access point) is not put into
an ARN or an identity attribute; its cleaned text goes to ``unmapped.invalid`` instead.

Mapping, field by field (our field → OCSF attribute):

=====================  ==========================================================================
Finding field          OCSF attribute
=====================  ==========================================================================
(constant)             ``class_uid`` 2004, ``class_name`` "Detection Finding", ``category_uid`` 2,
                       ``category_name`` "Findings", ``activity_id`` 1, ``activity_name`` "Create",
                       ``type_uid`` 200401, ``type_name`` "Detection Finding: Create",
                       ``status_id`` 1, ``status`` "New", ``metadata.version`` = OCSF_VERSION,
                       ``metadata.profiles`` ["cloud"], ``metadata.product`` {name
                       "s3-exposure-detector", vendor_name, version = ``product_version``},
                       ``finding_info.data_sources`` ["AWS CloudTrail"]
eventID                ``metadata.correlation_uid`` (findings of one record share it),
                       ``finding_info.related_events[0].uid``; with bucket, kind, key and
                       accessPoint (and, without an eventID, eventName, eventTime, actor,
                       sourceIPAddress, account, region) it derives ``metadata.uid`` =
                       ``finding_info.uid``: a UUIDv5, the same on every run
eventTime              ``time`` (epoch ms), ``finding_info.first_seen_time`` / ``last_seen_time``,
                       ``metadata.original_time`` (the text as written). Missing or malformed:
                       ``time`` is the conversion time and ``unmapped.time_note`` says so
eventName              ``api.operation``, ``metadata.event_code``
account                ``cloud.account`` {uid, name, type_id 10 "AWS Account"},
                       ``resources[].owner.account`` (the bucket's account)
region                 ``cloud.region``, ``resources[].region``; it picks the partition
                       (``resources[].cloud_partition``: aws, aws-cn, aws-us-gov)
bucket                 ``resources[]`` {type "AWS::S3::Bucket", name, uid ``arn:aws:s3:::<bucket>``}
key                    ``resources[]`` {type "AWS::S3::Object", name, uid ``arn:aws:s3:::<bucket>/<key>``}
accessPoint            ``resources[]`` {type "AWS::S3::AccessPoint", name, uid
                       ``arn:aws:s3:<region>:<account>:accesspoint/<name>``}
scope "account"        ``resources[]`` {type "AWS::S3::AccountPublicAccessBlock", uid = account}
public                 ``unmapped.public``
verdict                ``finding_info.types`` [verdict], ``finding_info.title``,
                       ``confidence_id``/``confidence`` (undetermined: 1 Low, else 3 High),
                       ``finding_info.attacks`` (with route), ``unmapped.verdict``
kind                   ``finding_info.analytic.category``, ``unmapped.kind``; with eventName it
                       picks ``api.service`` (s3 / cloudtrail / kms .amazonaws.com)
scope                  ``unmapped.scope`` (and which ``resources[]`` are listed)
access                 ``unmapped.access``
principals             ``unmapped.principals``
variant                ``unmapped.variant``
route                  ``finding_info.analytic`` {uid, name = route, type_id 1 "Rule"},
                       ``unmapped.route``
client                 ``unmapped.client``
actor                  ``evidences[0].actor.user`` {uid = the ARN, name = user or session name,
                       account from the ARN}; ``observables[]`` User Name (type_id 4)
sourceIPAddress        ``evidences[0].src_endpoint.ip`` (an IP address) or ``.name`` (an AWS
                       service name such as ``s3.amazonaws.com``); ``observables[]`` IP Address (2)
userAgent              ``evidences[0].http_request.user_agent``
severity               ``severity_id``/``severity``: critical 5 Critical, high 4 High, medium
                       3 Medium, low 2 Low, info 1 Informational, anything else 0 Unknown (the
                       value in ``unmapped.severity``); ``risk_level_id``/``risk_level`` (4..0)
reasons                ``finding_info.desc`` (joined with "; "), ``message`` is the title
error                  ``api.response.error``
errorMessage           ``api.response.error_message``
session.mfaAuthenticated  ``evidences[0].actor.session.is_mfa`` (only a real boolean)
session.sessionIssuer  ``evidences[0].actor.session.issuer``
session.sessionCreated ``evidences[0].actor.session.created_time`` (epoch ms)
session.identityType   ``evidences[0].actor.user.type`` (IAMUser → type_id 1 User, Root → 2 Admin,
                       else 99 Other; none: 0 Unknown)
session.invokedBy      ``evidences[0].actor.invoked_by``
session.sessionIssuerType  ``unmapped.session.sessionIssuerType``
=====================  ==========================================================================

``api`` (operation, service, response) is given at the top level (cloud profile) and again in
``evidences[0]``, beside ``actor``, ``src_endpoint`` and ``http_request``: OCSF's Detection
Finding has no top-level ``actor``, ``src_endpoint`` or ``http_request``; the evidence
artifact is where they belong. ATT&CK (``finding_info.attacks``): T1530 Data from Cloud
Storage (tactic TA0009 Collection) for public, weakening, and attempted or undetermined
exposures; T1562.008 Disable or Modify Cloud Logs (technique T1562 Impair Defenses, tactic
TA0005 Defense Evasion) for tamper and attempted tampering (route ``trail-tamper``); none for
an approval-tag audit.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

from handlers.detection.safe_text import (
    checked_access_point,
    checked_account,
    checked_arn,
    checked_bucket,
    checked_region,
)

OCSF_VERSION: Final = "1.5.0"
PRODUCT_NAME: Final = "s3-exposure-detector"
VENDOR_NAME: Final = "s3-exposure-detector project"

CLASS_UID: Final = 2004
CATEGORY_UID: Final = 2
ACTIVITY_CREATE: Final = 1
TYPE_UID: Final = CLASS_UID * 100 + ACTIVITY_CREATE  # 200401
# What every event of this converter is: a Detection Finding, created.
_CLASS: dict[str, Any] = {
    "activity_id": ACTIVITY_CREATE,
    "activity_name": "Create",
    "category_uid": CATEGORY_UID,
    "category_name": "Findings",
    "class_uid": CLASS_UID,
    "class_name": "Detection Finding",
    "type_uid": TYPE_UID,
    "type_name": "Detection Finding: Create",
}

# Caps (characters) for text taken from a finding.
TEXT_LIMIT: Final = 1024  # names, user agents, messages, object keys (S3 allows 1024 bytes)
ID_LIMIT: Final = 256  # event ids, account ids, regions, enum-like words
ARN_LIMIT: Final = 2048
DESC_LIMIT: Final = 4096  # finding_info.desc: all reasons together
TITLE_LIMIT: Final = 512
LIST_LIMIT: Final = 50  # items kept from a list (access, principals, reasons)

# Namespace of the stable uids (uuid5): fixed forever, or re-runs would give new uids.
UID_NAMESPACE: Final = uuid.UUID("8f0d7f3e-5c1a-5b7e-9a35-2f4c6b1d0e93")

SEVERITY_IDS: Final[dict[str, tuple[int, str]]] = {
    "critical": (5, "Critical"),
    "high": (4, "High"),
    "medium": (3, "Medium"),
    "low": (2, "Low"),
    "info": (1, "Informational"),
}
RISK_LEVELS: Final[dict[str, tuple[int, str]]] = {
    "critical": (4, "Critical"),
    "high": (3, "High"),
    "medium": (2, "Medium"),
    "low": (1, "Low"),
    "info": (0, "Info"),
}

# API versions of the services whose calls the rules read (api.service.version).
SERVICE_VERSIONS: Final[dict[str, str]] = {
    "s3.amazonaws.com": "2006-03-01",
    "cloudtrail.amazonaws.com": "2013-11-01",
    "kms.amazonaws.com": "2014-11-01",
}

T1530: Final[dict[str, Any]] = {
    "technique": {
        "uid": "T1530",
        "name": "Data from Cloud Storage",
        "src_url": "https://attack.mitre.org/techniques/T1530/",
    },
    "tactic": {"uid": "TA0009", "name": "Collection", "src_url": "https://attack.mitre.org/tactics/TA0009/"},
}
T1562_008: Final[dict[str, Any]] = {
    "technique": {
        "uid": "T1562",
        "name": "Impair Defenses",
        "src_url": "https://attack.mitre.org/techniques/T1562/",
    },
    "sub_technique": {
        "uid": "T1562.008",
        "name": "Disable or Modify Cloud Logs",
        "src_url": "https://attack.mitre.org/techniques/T1562/008/",
    },
    "tactic": {
        "uid": "TA0005",
        "name": "Defense Evasion",
        "src_url": "https://attack.mitre.org/tactics/TA0005/",
    },
}

_VERDICTS: Final = ("public", "weakening", "attempt", "undetermined", "tamper", "approval")

# Characters never emitted raw: C0/C1 controls and DEL, zero-width and bidi controls, the
# Unicode line/paragraph separators, BOM and lone surrogates.
_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
_PARTIAL_ESCAPE = re.compile(r"\\(?:x[0-9a-f]?|u[0-9a-f]{0,3})?\Z")
_ARN_ACCOUNT = re.compile(r"arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):", re.ASCII)
_TIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?", re.ASCII | re.IGNORECASE)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"  # a lone surrogate cannot be encoded as UTF-8
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _text(value: object, limit: int = TEXT_LIMIT) -> str | None:
    """``value`` as safe text of at most about ``limit`` characters, or None when it is no text.

    Strings are kept; integers and floats become their decimal text (a bool is not text);
    anything else (None, lists, dicts, ...) gives None. Empty text gives None.
    """
    if isinstance(value, str):
        text = str.__str__(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            text = repr(value) if isinstance(value, float) else str(int(value))
        except (ValueError, OverflowError):  # an int past Python's str() digit limit
            return None
    else:
        return None
    if not text:
        return None
    truncated = len(text) > limit
    cleaned = _UNSAFE_CHARS.sub(_escape, text[:limit])
    if len(cleaned) > limit:  # escapes made it longer: cut again, never inside an escape
        cleaned = _PARTIAL_ESCAPE.sub("", cleaned[:limit])
        truncated = True
    if truncated:
        cleaned += f"…[truncated: {len(text)} chars]"
    return cleaned


def _texts(value: object, limit: int = TEXT_LIMIT) -> list[str]:
    """A list of safe texts from a list (or a lone string); at most :data:`LIST_LIMIT` items."""
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, list | tuple):
        items = list(value[:LIST_LIMIT])
    else:
        return []
    return [text for item in items if (text := _text(item, limit)) is not None]


def _epoch_ms(value: object) -> int | None:
    """Milliseconds since the epoch for an ISO 8601 timestamp (CloudTrail's eventTime), else None.

    A time without a zone is taken as UTC (CloudTrail writes UTC). Years before 1970 are refused.
    """
    if not isinstance(value, str) or len(value) > 64 or not _TIME_TEXT.fullmatch(value.strip()):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        millis = int(moment.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):
        return None
    return millis if millis >= 0 else None


def _now_ms() -> int:
    """The conversion time, for a finding whose eventTime is unusable (patched by the tests)."""
    return time.time_ns() // 1_000_000


def _partition(region: str | None) -> str:
    if region is None:
        return "aws"
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@cache
def _event_sources() -> dict[str, str]:
    """eventName → eventSource of every call a rule reads (names are unique across sources)."""
    from handlers.detection.rules import (
        REGISTRY,  # imported late: the rules are not needed to import this module
    )

    sources: dict[str, str] = {}
    ambiguous: set[str] = set()
    for source, name in REGISTRY:
        if sources.setdefault(name, source) != source:
            ambiguous.add(name)
    return {name: source for name, source in sources.items() if name not in ambiguous}


def _service(event_name: str | None, kind: str | None) -> str:
    """The AWS service endpoint of the call: from the rules' registry, else from the finding's kind."""
    source: str | None = None
    if event_name is not None:
        try:
            source = _event_sources().get(event_name)
        except Exception:  # the registry failing to import must not lose the event
            source = None
    if source is None:
        source = "cloudtrail.amazonaws.com" if kind == "trail" else "s3.amazonaws.com"
    return source


def _stable_uid(parts: Mapping[str, str | None]) -> str:
    """A UUIDv5 of ``parts``: the same finding gives the same uid on every run and machine."""
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return str(uuid.uuid5(UID_NAMESPACE, canonical))


def _account_object(account: str) -> dict[str, Any]:
    return {"uid": account, "name": account, "type_id": 10, "type": "AWS Account"}


def _title(verdict: str | None, scope: str | None, route: str | None, target: str | None, call: str) -> str:
    """A one-line headline: what happened, to what (``target``: bucket, object, access point, account)."""
    on = f": {target}" if target else ""
    if verdict == "tamper" or route == "trail-tamper":
        done = "Failed attempt to tamper with" if verdict == "attempt" else "Tampering with"
        return f"{done} the audit trail ({call}){on}"
    if verdict == "approval":
        return f"S3 public-access approval tag changed{on}"
    what = {"object": "S3 object", "access-point": "S3 access point", "account": "S3 account settings"}.get(
        scope or "", "S3 bucket"
    )
    if verdict == "public":
        return f"{what} made public{on}"
    if verdict == "weakening":
        if scope == "account":
            return f"S3 Block Public Access weakened for account{on}"
        return f"{what} public access guard removed{on}"
    if verdict == "attempt":
        return f"Failed attempt to expose {what}{on}"
    if verdict == "undetermined":
        return f"Possible exposure of {what} (undetermined){on}"
    return f"S3 exposure finding ({call}){on}"


def _attacks(verdict: str | None, route: str | None) -> list[dict[str, Any]]:
    if verdict == "tamper" or (verdict in ("attempt", "undetermined") and route == "trail-tamper"):
        return [json.loads(json.dumps(T1562_008))]
    if verdict in ("public", "weakening", "attempt", "undetermined"):
        return [json.loads(json.dumps(T1530))]
    return []


def _user(actor: str, session: Mapping[str, Any]) -> dict[str, Any]:
    """OCSF user for an actor ARN (or whatever text the finding holds)."""
    user: dict[str, Any] = {"uid": actor}
    arn = checked_arn(actor)
    if arn is not None:
        resource = arn.split(":", 5)[5]
        # user/path/name, assumed-role/role/session, role/path/name, root, federated-user/name
        user["name"] = _text(resource.rsplit("/", 1)[-1], ID_LIMIT) or actor
        account = _ARN_ACCOUNT.match(arn)
        if account is not None:
            user["account"] = _account_object(account.group(1))
    else:
        user["name"] = actor
    identity = _text(session.get("identityType"), ID_LIMIT)
    type_id = {"IAMUser": 1, "Root": 2}.get(identity or "", 99 if identity else 0)
    user["type_id"] = type_id
    user["type"] = identity if identity else "Unknown"
    return user


def _endpoint(source_ip: str) -> dict[str, Any]:
    try:
        return {"ip": str(ipaddress.ip_address(source_ip))}
    except ValueError:
        return {"name": source_ip}  # AWS writes a service name (s3.amazonaws.com) for calls it makes


def _build(finding: Mapping[str, Any], product_version: str | None) -> dict[str, Any]:
    get = finding.get
    unmapped: dict[str, Any] = {}
    invalid: dict[str, str] = {}

    event_id = _text(get("eventID"), ID_LIMIT)
    event_name = _text(get("eventName"), ID_LIMIT)
    verdict_text = _text(get("verdict"), ID_LIMIT)
    verdict = verdict_text if verdict_text in _VERDICTS else None
    kind = _text(get("kind"), ID_LIMIT)
    scope = _text(get("scope"), ID_LIMIT)
    route = _text(get("route"), ID_LIMIT)
    severity_text = _text(get("severity"), ID_LIMIT)
    actor = _text(get("actor"), ARN_LIMIT)
    source_ip = _text(get("sourceIPAddress"), ID_LIMIT)
    user_agent = _text(get("userAgent"), TEXT_LIMIT)
    error = _text(get("error"), ID_LIMIT)
    error_message = _text(get("errorMessage"), TEXT_LIMIT)
    raw_session = get("session")
    session: Mapping[str, Any] = raw_session if isinstance(raw_session, Mapping) else {}

    raw_account, raw_region = get("account"), get("region")
    account = checked_account(raw_account)
    region = checked_region(raw_region)
    bucket_text = _text(get("bucket"), ID_LIMIT)
    bucket = checked_bucket(get("bucket"))
    key = _text(get("key"), TEXT_LIMIT)
    access_point_text = _text(get("accessPoint"), ID_LIMIT)
    access_point = checked_access_point(get("accessPoint"))
    for name, raw, valid in (
        ("account", raw_account, account),
        ("region", raw_region, region),
        ("bucket", get("bucket"), bucket),
        ("accessPoint", get("accessPoint"), access_point),
    ):
        shown = _text(raw, ID_LIMIT)
        if valid is None and shown is not None:
            invalid[name] = shown
    if verdict is None and verdict_text is not None:
        invalid["verdict"] = verdict_text

    # Time: the call's time; else the conversion time, and say so.
    raw_time = get("eventTime")
    event_time_text = _text(raw_time, 64)
    event_ms = _epoch_ms(raw_time)
    if event_ms is None:
        event_ms = _now_ms()
        unmapped["time_note"] = (
            "eventTime missing or malformed: time is when this event was converted, "
            "not when the call was made"
        )
        if event_time_text is not None:
            unmapped["eventTime"] = event_time_text

    # Severity.
    severity_id, severity = SEVERITY_IDS.get(severity_text or "", (0, "Unknown"))
    if severity_id == 0 and severity_text is not None:
        unmapped["severity"] = severity_text

    # Resources: the bucket, the object, the access point, or the account's S3 settings.
    partition = _partition(region)
    resources: list[dict[str, Any]] = []

    def resource(kind_name: str, name: str, uid: str | None) -> None:
        item: dict[str, Any] = {"type": kind_name, "name": name, "cloud_partition": partition}
        if uid is not None:
            item["uid"] = uid
        if region is not None:
            item["region"] = region
        if account is not None:
            item["owner"] = {
                "uid": account,
                "name": account,
                "type_id": 99,
                "type": "AWS Account",
                "account": _account_object(account),
            }
        resources.append(item)

    if bucket_text is not None:
        resource("AWS::S3::Bucket", bucket_text, f"arn:{partition}:s3:::{bucket}" if bucket else None)
    if key is not None and scope == "object":
        object_uid = f"arn:{partition}:s3:::{bucket}/{key}" if bucket else None
        resource("AWS::S3::Object", key, object_uid)
    if access_point_text is not None:
        ap_uid = (
            f"arn:{partition}:s3:{region}:{account}:accesspoint/{access_point}"
            if access_point and region and account
            else None
        )
        resource("AWS::S3::AccessPoint", access_point_text, ap_uid)
    if scope == "account" and account is not None and not resources:
        resource("AWS::S3::AccountPublicAccessBlock", account, account)

    target: str | None
    if scope == "object" and bucket_text and key:
        target = f"{bucket_text}/{key}"
    else:
        target = bucket_text or access_point_text or account
    call = event_name or "unknown call"
    title = _text(_title(verdict, scope, route, target, call), TITLE_LIMIT) or "S3 exposure finding"
    reasons = _texts(get("reasons"), TEXT_LIMIT)
    desc = _text("; ".join(reasons), DESC_LIMIT) if reasons else None

    uid = _stable_uid(
        {
            "eventID": event_id,
            "bucket": bucket_text,
            "kind": kind,
            "key": key,
            "accessPoint": access_point_text,
            **(
                {}
                if event_id
                else {
                    "eventName": event_name,
                    "eventTime": event_time_text,
                    "actor": actor,
                    "sourceIPAddress": source_ip,
                    "account": _text(raw_account, ID_LIMIT),
                    "region": _text(raw_region, ID_LIMIT),
                }
            ),
        }
    )

    product: dict[str, Any] = {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME}
    version = _text(product_version, 64)
    if version is not None:
        product["version"] = version
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": product,
        "profiles": ["cloud"],
        "uid": uid,
    }
    if event_id is not None:
        metadata["correlation_uid"] = event_id
    if event_name is not None:
        metadata["event_code"] = event_name
    if event_time_text is not None:
        metadata["original_time"] = event_time_text

    finding_info: dict[str, Any] = {"uid": uid, "title": title, "data_sources": ["AWS CloudTrail"]}
    if desc is not None:
        finding_info["desc"] = desc
    if verdict is not None:
        finding_info["types"] = [verdict]
    if route is not None:
        analytic: dict[str, Any] = {"uid": route, "name": route, "type_id": 1, "type": "Rule"}
        if kind is not None:
            analytic["category"] = kind
        finding_info["analytic"] = analytic
    attacks = _attacks(verdict, route)
    if attacks:
        finding_info["attacks"] = attacks
    if "time_note" not in unmapped:
        finding_info["first_seen_time"] = event_ms
        finding_info["last_seen_time"] = event_ms
    if event_id is not None:
        finding_info["related_events"] = [{"uid": event_id, "type": "AWS CloudTrail record"}]

    event: dict[str, Any] = {
        **_CLASS,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "time": event_ms,
        "message": title,
        "metadata": metadata,
        "finding_info": finding_info,
    }
    if verdict is not None:
        event["confidence_id"], event["confidence"] = (1, "Low") if verdict == "undetermined" else (3, "High")
    risk = RISK_LEVELS.get(severity_text or "")
    if risk is not None:
        event["risk_level_id"], event["risk_level"] = risk
    if resources:
        event["resources"] = resources

    cloud: dict[str, Any] = {"provider": "AWS"}
    if region is not None:
        cloud["region"] = region
    if account is not None:
        cloud["account"] = _account_object(account)
    event["cloud"] = cloud

    # The call: top level (cloud profile) and in the evidence, with who made it and from where.
    evidence: dict[str, Any] = {}
    if event_name is not None:
        service = _service(event_name, kind)
        api: dict[str, Any] = {
            "operation": event_name,
            "service": {"name": service, "uid": service, "version": SERVICE_VERSIONS.get(service, "unknown")},
        }
        if error is not None or error_message is not None:
            response: dict[str, Any] = {}
            if error is not None:
                response["error"] = error
            if error_message is not None:
                response["error_message"] = error_message
            api["response"] = response
        event["api"] = api
        evidence["api"] = json.loads(json.dumps(api))
    observables: list[dict[str, Any]] = [
        {"name": f"resources[{index}].uid", "type_id": 10, "type": "Resource UID", "value": item["uid"]}
        for index, item in enumerate(resources)
        if "uid" in item
    ]
    actor_object: dict[str, Any] = {}
    if actor is not None:
        user = _user(actor, session)
        actor_object["user"] = user
        observables.append(
            {"name": "evidences[0].actor.user.name", "type_id": 4, "type": "User Name", "value": user["name"]}
        )
    session_object: dict[str, Any] = {}
    mfa = session.get("mfaAuthenticated")
    if isinstance(mfa, bool):
        session_object["is_mfa"] = mfa
    issuer = _text(session.get("sessionIssuer"), ARN_LIMIT)
    if issuer is not None:
        session_object["issuer"] = issuer
    created = _epoch_ms(session.get("sessionCreated"))
    if created is not None:
        session_object["created_time"] = created
    if session_object:
        actor_object["session"] = session_object
    invoked_by = _text(session.get("invokedBy"), ID_LIMIT)
    if invoked_by is not None:
        actor_object["invoked_by"] = invoked_by
    if actor_object:
        evidence["actor"] = actor_object
    if source_ip is not None:
        endpoint = _endpoint(source_ip)
        evidence["src_endpoint"] = endpoint
        if "ip" in endpoint:
            observables.append(
                {
                    "name": "evidences[0].src_endpoint.ip",
                    "type_id": 2,
                    "type": "IP Address",
                    "value": endpoint["ip"],
                }
            )
    if user_agent is not None:
        evidence["http_request"] = {"user_agent": user_agent}
    if evidence:
        event["evidences"] = [evidence]
    if observables:
        event["observables"] = observables

    # Our fields with no OCSF home.
    public = get("public")
    for name, value in (
        ("verdict", verdict),
        ("kind", kind),
        ("scope", scope),
        ("route", route),
        ("variant", _text(get("variant"), ID_LIMIT)),
        ("client", _text(get("client"), ID_LIMIT)),
    ):
        if value is not None:
            unmapped[name] = value
    if isinstance(public, bool):
        unmapped["public"] = public
    unmapped["access"] = _texts(get("access"), ID_LIMIT)
    unmapped["principals"] = _texts(get("principals"), ARN_LIMIT)
    issuer_type = _text(session.get("sessionIssuerType"), ID_LIMIT)
    if issuer_type is not None:
        unmapped["session"] = {"sessionIssuerType": issuer_type}
    if invalid:
        unmapped["invalid"] = invalid
    event["unmapped"] = unmapped
    return event


def _minimal(finding: object, exc: Exception) -> dict[str, Any]:
    """A valid event saying the conversion failed: the finding is never lost to a bug here."""
    parts = {"fallback": _text(repr(type(finding)), ID_LIMIT)}
    return {
        **_CLASS,
        "severity_id": 0,
        "severity": "Unknown",
        "status_id": 1,
        "status": "New",
        "time": _now_ms(),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME},
            "uid": _stable_uid(parts),
        },
        "finding_info": {"uid": _stable_uid(parts), "title": "S3 exposure finding (not convertible)"},
        "unmapped": {"conversion_error": _text(f"{type(exc).__name__}: {exc}", TEXT_LIMIT)},
    }


def detection_finding(finding: Mapping[str, Any], *, product_version: str | None = None) -> dict[str, Any]:
    """One OCSF Detection Finding (class 2004, activity Create) for ``finding``; never raises.

    ``finding`` is a :class:`handlers.detection.finding.Finding` (or any mapping: every field is checked);
    ``product_version`` goes to ``metadata.product.version``. The result is a plain dict of
    JSON types, ready for ``json.dumps``. See the module docstring for the mapping.
    """
    try:
        source: Mapping[str, Any] = finding if isinstance(finding, Mapping) else {}
        return _build(source, product_version)
    except Exception as exc:  # defensive: a hostile mapping (or a bug here) must not lose the finding
        return _minimal(finding, exc)
