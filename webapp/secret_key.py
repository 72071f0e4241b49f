"""The key that signs session cookies (Flask's ``SECRET_KEY``).

A key made at random in each process breaks sessions: a cookie signed by
one gunicorn worker is refused by the next, and every restart logs everyone
out. So the key is, in this order:

* ``SECRET_KEY`` from the environment: set it, the same on every host, when
  more than one host serves the app (and to rotate it, move the old one to
  ``SECRET_KEY_FALLBACKS``, comma-separated, which still verify);
* otherwise the key kept in ``$WEBAPP_VAR_DIR/secret_key``, made once (32
  random bytes, mode 0600) by the first process that needs it: every worker
  and every restart on this host share it.

The file is written to a temporary name and then hard-linked into place, so
processes starting at once agree on one key and never read a half-written
file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE_NAME = "secret_key"
MIN_CHARS = 16


def check(key: str, name: str = "SECRET_KEY") -> str:
    """``ValueError`` naming the variable for a key too short to sign with."""
    if len(key) < MIN_CHARS:
        raise ValueError(f"{name} must be at least {MIN_CHARS} characters (e.g. `python -c "
                         f"'import secrets; print(secrets.token_hex(32))'`), got {len(key)}")
    return key


def load_or_create(var_dir: Path) -> str:
    """The key in ``var_dir/secret_key``, made there if it is not yet."""
    path = var_dir / FILE_NAME
    if not path.exists():
        temporary = var_dir / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as stream:
                stream.write(secrets.token_hex(32))
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            temporary.unlink()
    return check(path.read_text().strip(), str(path))
