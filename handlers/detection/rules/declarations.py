"""What a rule module declares besides ``classify``: the shapes the registry derives everything from.

A rule module holds, next to ``EVENT_SOURCE``, ``EVENT_NAMES`` and ``classify``:

- ``PATTERNS``: :class:`PatternPart` s, the EventBridge pattern alternatives that route its
  events, each naming its route (or ``patterns(context)`` when they depend on the deployment);
- ``DATA_EVENTS``: :class:`DataEvents` for the names CloudTrail records only as data events
  (every other name is a management event, which the trail always records);
- ``CONFIRMATION``: what the response function reads live to confirm a finding (:data:`Confirmation`);
- ``TARGETS`` (optional): scope -> label for targets that are not buckets, objects, accounts or
  trails; such findings name the target in ``accessPoint`` and no bucket, so they are alerted only;
- ``REPLAY``: per event name, how the demo replays the call into the emulator (:data:`ReplayHint`);
- ``RECORDED_IN`` (optional): the only regions CloudTrail records the calls in, when AWS routes
  them to fixed regions (EventBridge rules are regional: a deployment must watch one of them).

Plain data, no AWS or cdktf import: the stack, the demo and the Lambda all read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from handlers.detection.finding import Route

# What the response function reads to confirm a finding (handlers.response.function._confirm, by scope):
#   bucket       - the bucket's policy status, policy, ACL, BPA, ownership and tags
#   account      - the account's Block Public Access
#   access-point - the access point's policy status, its own BPA, its bucket's and the account's
#   alert-only   - nothing it can read or remediate (an Object Lambda or Multi-Region Access
#                  Point, an Outposts resource): the account BPA is read and the alert goes out
#   none         - nothing: trail tampering and approvals are reported as recorded
Confirmation = Literal["bucket", "account", "access-point", "alert-only", "none"]

# How demo/replay_state.py puts the state a call left into the emulator; None: not replayed
# (the response function reads nothing that call changed, or moto cannot hold it).
ReplayHint = Literal[
    "create-bucket",
    "put-bucket-policy",
    "put-bucket-acl",
    "put-bucket-public-access-block",
    "delete-bucket-public-access-block",
    "put-account-public-access-block",
    "delete-account-public-access-block",
    "put-bucket-ownership-controls",
    "delete-bucket-ownership-controls",
    "put-bucket-logging",
    "put-bucket-tagging",
    "delete-bucket-tagging",
    "put-object",
    "put-object-acl",
    "copy-object",
]


@dataclass(frozen=True)
class PatternPart:
    """One alternative of a route's EventBridge pattern, under ``detail`` (its eventSource is the rule's).

    ``fallback``: a looser alternative for when the route's pattern would exceed EventBridge's
    size limit (fail open: the classifier decides).
    """

    route: Route
    detail: Mapping[str, Any]
    fallback: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DataEvents:
    """Calls CloudTrail records only as data events, and the trail option that pays for them.

    ``option`` names the ``stacks.config.AccountConfig`` flag that turns them on (data events
    cost money, so each is opt-in); ``resource_type`` is the advanced selectors' ``resources.type``.
    """

    resource_type: str
    event_names: tuple[str, ...]
    option: str


# The two S3 object data-event options of the trail (stacks.config: trail.object_*_data_events).
OBJECT_ACL_OPTION = "object_acl_data_events"
OBJECT_WRITE_OPTION = "object_write_data_events"
