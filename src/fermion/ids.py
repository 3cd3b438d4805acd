"""Device ids as Particle writes them: 12 bytes shown as 24 hex digits.

Every layer (the CLI, the API, the admin commands, the simulator's store) reads a device id a
person typed through ``parse_device_id`` and words its refusal with ``not_a_device_id``, so the
rule and its message are the same wherever a user meets them.
"""

import re

DEVICE_ID_DIGITS = 24
_DEVICE_ID = re.compile(r"[0-9a-f]{24}")


def parse_device_id(value: str) -> str | None:
    """The id in ``value`` (any case and surrounding blanks in, lower case out), or None."""
    text = value.strip().lower()
    return text if _DEVICE_ID.fullmatch(text) else None


def not_a_device_id(field: str, value: str) -> str:
    """The one-line refusal for ``value`` given as ``field`` (cut short: it may be hostile)."""
    return f"{field}: {value[:40]!r} is not a device id ({DEVICE_ID_DIGITS} hex digits)"
