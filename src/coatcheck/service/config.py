"""The service's configuration: defaults, then a TOML file, the environment, code.

Keys are the application config keys (``COATCHECK_*``, ``SECRET_KEY``...). The
instance folder holds the SQLite files and the generated secret key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import ConfigurationError
from ..core.settings import parse_flag

#: Service defaults; the library's own defaults apply to every other key.
DEFAULTS: dict[str, Any] = {
    "COATCHECK_LOGIN_URL": "/login",
    "COATCHECK_REAUTH_URL": "/reauth",
    "COATCHECK_LESSONS": True,
    "COATCHECK_METRICS": False,
    # The background mail sender thread: given, it decides; by default serve's workers run it.
    "COATCHECK_MAIL_SENDER": True,
    # The bearer token /metrics wants; unset, one is generated into the instance folder.
    "COATCHECK_METRICS_TOKEN": None,
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "MAX_FORM_MEMORY_SIZE": 64 * 1024,
    "MAX_FORM_PARTS": 100,
}


def load_config(
    config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the service configuration from every source, later ones winning.

    Sources: :data:`DEFAULTS`, the TOML file named by ``COATCHECK_CONFIG``
    (environment or ``config``), the environment, then ``config``.
    """
    environ = os.environ if environ is None else environ
    config = dict(config or {})
    merged: dict[str, Any] = dict(DEFAULTS)
    config_file = config.get("COATCHECK_CONFIG") or environ.get("COATCHECK_CONFIG")
    if config_file:
        merged.update(read_toml(Path(str(config_file))))
    for key, value in environ.items():
        if key.startswith("COATCHECK_") or key == "SECRET_KEY":
            merged[key] = value
    if "SECRET_KEY_FALLBACKS" in environ:
        merged["SECRET_KEY_FALLBACKS"] = [
            k.strip() for k in environ["SECRET_KEY_FALLBACKS"].split(",") if k.strip()
        ]
    merged.update(config)
    merged["COATCHECK_INSTANCE"] = os.path.abspath(
        str(merged.get("COATCHECK_INSTANCE") or "instance")
    )
    for key in ("COATCHECK_LESSONS", "COATCHECK_METRICS", "COATCHECK_MAIL_SENDER"):
        merged[key] = parse_flag(key, merged[key])
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    """Return the settings in a TOML file (top-level keys as in the app config)."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the configuration file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"the configuration file {path} is not valid TOML: {exc}"
        ) from None
    settings = {str(key): value for key, value in data.items()}
    if "access_control" in settings:  # the access rules' table, named as in Authelia
        settings["COATCHECK_ACCESS_CONTROL"] = settings.pop("access_control")
    return settings
