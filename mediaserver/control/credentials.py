"""The one SigV4 credential pair the control plane accepts.

It comes from ``CARILLON_ACCESS_KEY_ID`` and ``CARILLON_SECRET_ACCESS_KEY`` when both are
set. Otherwise the pair kept in ``<data-dir>/credentials.json`` (mode 0600) is used, and on
the very first start a random pair is generated there and printed once.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Credentials", "load_credentials"]

_FILE = "credentials.json"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    generated: bool = False
    """True when this start generated the pair (the caller prints it once)."""


def _generate() -> Credentials:
    alphabet = string.ascii_uppercase + string.digits
    key_id = "AKCL" + "".join(secrets.choice(alphabet) for _ in range(16))
    secret = secrets.token_urlsafe(30)[:40]
    return Credentials(key_id, secret, generated=True)


def load_credentials(data_dir: Path, environ: Mapping[str, str] | None = None) -> Credentials:
    """Return the accepted credential pair, generating and storing one if needed.

    Raises:
        SystemExit: only one of the two environment variables is set, or the stored file
            is unreadable.
    """
    env = os.environ if environ is None else environ
    key_id = env.get("CARILLON_ACCESS_KEY_ID")
    secret = env.get("CARILLON_SECRET_ACCESS_KEY")
    if key_id and secret:
        return Credentials(key_id, secret)
    if key_id or secret:
        raise SystemExit(
            "set both CARILLON_ACCESS_KEY_ID and CARILLON_SECRET_ACCESS_KEY, or neither"
        )
    path = data_dir / _FILE
    if path.exists():
        try:
            stored = json.loads(path.read_text())
            return Credentials(stored["AccessKeyId"], stored["SecretAccessKey"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"cannot read {path}: {exc}") from None
    creds = _generate()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {"AccessKeyId": creds.access_key_id, "SecretAccessKey": creds.secret_access_key}, f
        )
    return creds
