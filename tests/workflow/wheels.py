"""Throwaway plugin distributions: built as wheels, installed with pip into
the test environment, uninstalled afterwards.

The wheel is written directly (a zip with a ``.dist-info``), which is all a
wheel is; that keeps the tests offline and independent of the build tools in
the virtualenv. pip installs it exactly as it would a plugin from PyPI.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    files: Mapping[str, str],
    entry_points: Mapping[str, Mapping[str, str]],
) -> Path:
    """A pure-Python wheel of ``files`` (path in site-packages -> text)."""
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    info = f"{stem}.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    contents[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    contents[f"{info}/entry_points.txt"] = "\n".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items())
        for group, points in entry_points.items()
    )
    record = [f"{path},sha256={_digest(text)},{len(text.encode())}" for path, text in contents.items()]
    contents[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    path = dest / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in contents.items():
            archive.writestr(member, text)
    return path


def build_wheel_from_project(project: Path, dest: Path) -> Path:
    """The wheel of a one-module project (``[tool.setuptools] py-modules``)."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    modules = meta["tool"]["setuptools"]["py-modules"]
    files = {f"{module}.py": (project / f"{module}.py").read_text() for module in modules}
    project_meta = meta["project"]
    return build_wheel(dest, project_meta["name"], project_meta["version"], files,
                       project_meta.get("entry-points", {}))


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
                   check=True, capture_output=True)
    importlib.invalidate_caches()


def install(*wheels: Path) -> None:
    pip("install", "--no-index", "--no-deps", "--force-reinstall", *map(str, wheels))


def uninstall(*names: str) -> None:
    pip("uninstall", "--yes", *names)
