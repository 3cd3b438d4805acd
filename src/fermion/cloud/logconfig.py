"""Logging for ``fermion serve``: uvicorn's, with secrets taken out of access lines.

particle-cli and the seed's curl lines may put ``access_token`` in the query string; an access
log would otherwise keep a usable token on disk.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

_SECRET_PARAM = re.compile(
    r"((?:access_token|refresh_token|client_secret|password)=)[^&\s]*", re.IGNORECASE
)


def redact(text: str) -> str:
    return _SECRET_PARAM.sub(r"\1[redacted]", text)


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
