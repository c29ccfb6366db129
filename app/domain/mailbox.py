"""E-mail addresses as PIM notification rules take them (``notificationRecipients``)."""

from __future__ import annotations

import re

# A plain address: something@domain.tld, no spaces. Graph's rule takes strings; a typo here
# would silently send the security team's alerts nowhere, so plans and tenants are checked.
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
MAX_ADDRESS_LENGTH = 254  # RFC 5321 path limit


def check_address(value: str) -> str:
    """``value`` unchanged if it is an e-mail address; ``ValueError`` saying why if not."""
    if len(value) > MAX_ADDRESS_LENGTH:
        raise ValueError(f"an e-mail address is at most {MAX_ADDRESS_LENGTH} characters")
    if not _ADDRESS.match(value):
        raise ValueError(f"{value!r} is not an e-mail address (name@domain.tld)")
    return value
