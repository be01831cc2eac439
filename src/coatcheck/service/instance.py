"""The instance folder: SQLite files and the generated secret key."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

SECRET_FILE = "secret_key"  # noqa: S105 - a file name


def instance_secret_key(instance: str | os.PathLike[str]) -> str:
    """Return the instance's secret key, generating it once (mode 0600).

    Every worker and every later start reads the same key: the first process
    to get here creates the file exclusively; the others read it.
    """
    path = Path(instance) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return _read(path)


def existing_secret_key(instance: str | os.PathLike[str]) -> str | None:
    """Return the instance's secret key if it has one; create nothing."""
    path = Path(instance) / SECRET_FILE
    return _read(path) if path.exists() else None


def _read(path: Path) -> str:
    for _ in range(100):  # a concurrent creator may not have written it yet
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.02)
    raise RuntimeError(f"the secret key file {path} is empty")
