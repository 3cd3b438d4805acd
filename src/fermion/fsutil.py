"""Writing files so that a crash or an error never leaves half of one behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o644, *, exclusive: bool = False) -> bool:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then move it into place.

    With ``exclusive``, an existing ``path`` is never replaced (the first writer wins, even
    across processes) and the result says whether this call created the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        if not exclusive:
            os.replace(tmp_name, path)
            return True
        try:
            os.link(tmp_name, path)  # fails when the file exists
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
