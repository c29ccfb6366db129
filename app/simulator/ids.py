"""Identifiers in the shapes Graph uses.

* Objects, requests and PIM-created schedules: GUIDs (here drawn from a seeded RNG so runs replay).
* ``unifiedRoleAssignment`` ids (and the schedule/instance ids of assignments made outside PIM):
  ``base64url(roleTemplateId.bytes_le + principalId.bytes_le)`` without padding, plus ``-1``.
  Verified against the doc samples: role 62e90394-… + principal 6be4b305-… gives
  ``lAPpYvVpN0KRkAEhdxReEAWz5Gtet_xOv8wxvTtTpfg-1`` (roleAssignmentScheduleInstances_list).
  Eligibility instances append ``-e`` (roleEligibilityScheduleInstances_list sample).
"""

from __future__ import annotations

import base64
import functools
import random
import uuid


@functools.lru_cache(maxsize=1 << 17)
def role_assignment_id(role_definition_id: str, principal_id: str) -> str:
    raw = uuid.UUID(role_definition_id).bytes_le + uuid.UUID(principal_id).bytes_le
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") + "-1"


def eligibility_instance_id(role_definition_id: str, principal_id: str) -> str:
    return role_assignment_id(role_definition_id, principal_id) + "-e"


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return len(value) == 36


class IdFactory:
    """GUIDs from a seeded RNG: the same seed and the same calls give the same ids."""

    def __init__(self, seed: int | str) -> None:
        self._rng = random.Random(f"ids:{seed}")

    def guid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
