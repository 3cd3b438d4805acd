"""Logging for ``fermion serve``: uvicorn's, with secrets taken out of access lines.

particle-cli and the seed's curl lines may put ``access_token`` in the query string, and
particle-cli's ``token revoke`` puts the token in the path; an access log would otherwise keep a
usable token on disk.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote_plus

from uvicorn.config import LOGGING_CONFIG

_SECRET_NAMES = frozenset({"access_token", "refresh_token", "client_secret", "password"})
# A query parameter; its name is compared once decoded, as the API decodes it before reading it
# (``access%5Ftoken`` is ``access_token`` to starlette, so it must be to the redaction too).
_PARAM = re.compile(r"(?P<name>[^&=?\s]+)=(?P<value>[^&\s]*)")
# ``DELETE /v1/access_tokens/<token>``: particle-cli's revoke puts the token in the path.
_TOKEN_IN_PATH = re.compile(
    r"(/v1/access_tokens/)(?!current(?:[/?\s\"]|$))[^/?\s\"]+", re.IGNORECASE
)


def _redact_param(match: re.Match[str]) -> str:
    name = unquote_plus(match.group("name")).lower()
    if name in _SECRET_NAMES:
        return f"{match.group('name')}=[redacted]"
    return match.group(0)


def redact(text: str) -> str:
    return _PARAM.sub(_redact_param, _TOKEN_IN_PATH.sub(r"\1[redacted]", text))


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def log_config() -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactSecrets}}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    config["loggers"]["fermion"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
