"""The layers of webapp/ that docs/ARCHITECTURE.md draws hold: the
import-linter contracts of setup.cfg (each layer imports only the layers
below it; no import cycle between the parts of a package)."""

from __future__ import annotations

import subprocess

from ..support.processes import BIN, ROOT


def test_the_import_contracts_hold():
    done = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
