"""Public grants in S3 ACLs, in all three request forms CloudTrail records.

1. XML body (console, ``--access-control-policy``):
   ``AccessControlPolicy.AccessControlList.Grant`` - one object, or a list.
2. Canned ACL header ``x-amz-acl`` (string, or a one-item list in 1.05 records).
3. Grant headers ``x-amz-grant-*`` under ``accessControlList`` (or, in some
   records, directly in ``requestParameters``): comma-separated grantee lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from handlers.detection.records import as_list, as_text, deep_get, get_ci
from handlers.detection.s3_terms import GRANT_HEADERS as GRANT_HEADERS

ALL_USERS = "AllUsers"
AUTHENTICATED_USERS = "AuthenticatedUsers"
# Only the two public groups live under groups/global/ (LogDelivery is groups/s3/): the
# EventBridge patterns match this path, the reader below the full URIs.
PUBLIC_GROUP_PATH = "/groups/global/"
PUBLIC_GROUP_URIS: dict[str, str] = {
    group: f"http://acs.amazonaws.com{PUBLIC_GROUP_PATH}{group}" for group in (ALL_USERS, AUTHENTICATED_USERS)
}
_PUBLIC_GROUP_URI = re.compile(
    r"^https?://acs\.amazonaws\.com"
    + re.escape(PUBLIC_GROUP_PATH)
    + "("
    + "|".join(PUBLIC_GROUP_URIS)
    + ")/?$",
    re.IGNORECASE,
)

PERMISSION_ACCESS: dict[str, tuple[str, ...]] = {
    "READ": ("read",),
    "WRITE": ("write",),
    "READ_ACP": ("acl-read",),
    "WRITE_ACP": ("acl-write",),
    "FULL_CONTROL": ("read", "write", "acl-read", "acl-write"),
}

CANNED_PUBLIC: dict[str, tuple[str, tuple[str, ...]]] = {
    "public-read": (ALL_USERS, ("read",)),
    "public-read-write": (ALL_USERS, ("read", "write")),
    "authenticated-read": (AUTHENTICATED_USERS, ("read",)),
}


# grantee=value pairs in a grant header: uri="http://...", id=abc, emailAddress="a@b"
_GRANTEE_PAIR = re.compile(r"""\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^,\s]*))\s*""")


@dataclass
class AclVerdict:
    """Public grants found in one request, and the request form(s) that carried them."""

    access: set[str] = field(default_factory=set)
    principals: set[str] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)
    forms: set[str] = field(default_factory=set)  # "body" and/or "header"
    present_forms: set[str] = field(default_factory=set)  # forms the request used at all

    @property
    def public(self) -> bool:
        return bool(self.principals)

    def add(self, form: str, group: str, access: tuple[str, ...], reason: str) -> None:
        self.forms.add(form)
        self.principals.add(group)
        self.access.update(access)
        self.reasons.append(reason)


def public_group(uri: Any) -> str | None:
    """``AllUsers`` or ``AuthenticatedUsers`` for a public group URI, else ``None``."""
    text = as_text(uri)
    if not text:
        return None
    match = _PUBLIC_GROUP_URI.match(text.strip())
    if not match:
        return None
    return ALL_USERS if match.group(1).lower() == "allusers" else AUTHENTICATED_USERS


def analyse_acl_request(params: dict[str, Any]) -> AclVerdict:
    """Find every public grant in a request's parameters, in all three forms."""
    verdict = AclVerdict()
    _body_grants(params, verdict)
    _canned_acl(params, verdict)
    _grant_headers(params, verdict)
    return verdict


def _body_grants(params: dict[str, Any], verdict: AclVerdict) -> None:
    acl = deep_get(params, "AccessControlPolicy", "AccessControlList")
    if acl is None:
        return
    verdict.present_forms.add("body")
    add_public_grants(acl.get("Grant") if isinstance(acl, dict) else None, verdict, "ACL body")


def add_public_grants(grants: Any, verdict: AclVerdict, where: str) -> None:
    """Record every grant (one object or a list) to AllUsers/AuthenticatedUsers as a body-form grant."""
    for grant in as_list(grants):
        if not isinstance(grant, dict):
            continue
        grantee = grant.get("Grantee")
        uri = get_ci(grantee, "URI") if isinstance(grantee, dict) else None
        group = public_group(uri)
        if not group:
            continue
        permission = (as_text(grant.get("Permission")) or "").upper()
        access = PERMISSION_ACCESS.get(permission, ("read", "write", "acl-read", "acl-write"))
        verdict.add("body", group, access, f"{where} grants {permission or 'unknown permission'} to {group}")


def _canned_acl(params: dict[str, Any], verdict: AclVerdict) -> None:
    raw = get_ci(params, "x-amz-acl")
    if raw is None:
        return
    verdict.present_forms.add("header")
    for value in as_list(raw):
        canned = (as_text(value) or "").strip().lower()
        if canned in CANNED_PUBLIC:
            group, access = CANNED_PUBLIC[canned]
            verdict.add(
                "header",
                group,
                access,
                f"canned ACL x-amz-acl: {canned} grants {'/'.join(access)} to {group}",
            )


def _grant_headers(params: dict[str, Any], verdict: AclVerdict) -> None:
    containers = [params]
    nested = get_ci(params, "accessControlList")
    if isinstance(nested, dict):
        containers.append(nested)
    for container in containers:
        for header, permission in GRANT_HEADERS.items():
            raw = get_ci(container, header)
            if raw is None:
                continue
            verdict.present_forms.add("header")
            for value in as_list(raw):
                for group in _groups_in_grant_header(as_text(value) or ""):
                    verdict.add(
                        "header",
                        group,
                        PERMISSION_ACCESS[permission],
                        f"grant header {header} names {group}",
                    )


def _groups_in_grant_header(value: str) -> set[str]:
    """Public groups named in a grant header value such as ``id="a", uri="http://..."``."""
    groups: set[str] = set()
    for match in _GRANTEE_PAIR.finditer(value):
        if match.group(1).lower() != "uri":
            continue
        uri = next((g for g in match.groups()[1:] if g is not None), "")
        group = public_group(uri)
        if group:
            groups.add(group)
    return groups
