"""The access levels a finding or an exposure grants the public, and which of them count as write.

One definition, read by the record-only severity of a finding (``rules.base``), the live
rating (``severity``) and the approval's coverage (``approvals``), so the three agree.
"""

from __future__ import annotations

# Anything that lets the public change the bucket, its objects or who may access them.
WRITE_ACCESS = frozenset({"write", "acl-write", "policy-write", "all"})
READ_ACCESS = frozenset({"read", "all"})
