"""What the build makes: the images the stack runs (their size, their user,
what they install, the CA certificate the build trusted kept out of them),
and a compose file the installed Compose accepts."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pytest

from ..support.processes import ROOT
from .conftest import REPORT

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1200)]

APP_IMAGES = ["webapp:local", "webapp-monitoring:local"]
BASE_IMAGE = "python:3.11-slim"
#: What an application image may weigh: the Python base (about 130 MB) and
#: the installed dependencies (about 100 MB), with room, and no more: a
#: compiler or a cache left behind would go over.
MAX_APP_IMAGE_MB = 300
BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def inspect(image: str) -> dict:
    return json.loads(subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                                     text=True, check=True).stdout)[0]


def run(image: str, *argv: str) -> str:
    result = subprocess.run(["docker", "run", "--rm", "--entrypoint", argv[0], image, *argv[1:]],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_images_are_small_and_run_as_a_user_of_their_own(stack):
    sizes = {}
    for image in APP_IMAGES + ["postgres:15", "redis:7", BASE_IMAGE]:
        details = inspect(image)
        standin = (details["Config"].get("Labels") or {}).get("org.webapp.local-standin") == image
        sizes[image] = f"{details['Size'] / 1e6:.0f} MB" + (" (local stand-in)" if standin else "")
    REPORT.append("image sizes: " + ", ".join(f"{image} {size}" for image, size in sizes.items()))
    for image in APP_IMAGES:
        details = inspect(image)
        assert details["Size"] / 1e6 < MAX_APP_IMAGE_MB, sizes
        assert details["Config"]["User"] == "webapp"
        assert run(image, "id", "-u").strip() == "10001"
        assert details["Config"]["StopSignal"] == "SIGTERM"
        assert "/healthz" in " ".join(details["Config"]["Healthcheck"]["Test"])


def plugins_of(image: str) -> set[str]:
    listing = run(image, "flask", "--app", "wsgi", "runners", "list")
    return {line.split()[2] for line in listing.splitlines()[1:] if line.strip()}


def test_test_plugins_are_in_an_image_only_when_a_build_argument_asks(stack):
    for image in APP_IMAGES:
        assert plugins_of(image) == {"webapp-roadmap"}
    tag = "webapp:with-test-plugins"
    build = subprocess.run(["docker", "build", "--file", "docker/Dockerfile", "--tag", tag,
                            "--build-arg", "PLUGINS=roadmap synthetic", "."],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        assert plugins_of(tag) == {"webapp-roadmap", "webapp-synthetic"}
    finally:
        subprocess.run(["docker", "rmi", tag], capture_output=True)


def certificates(pem: str) -> set[str]:
    return {"".join(block.split()) for block in re.findall(
        r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.DOTALL)}


def test_the_certificate_the_build_trusted_is_not_in_the_images(stack):
    base_bundle = run(BASE_IMAGE, "cat", BUNDLE)
    build_ca = ROOT / "docker" / "build-ca" / "pip.crt"
    extra = certificates(build_ca.read_text()) - certificates(base_bundle) if build_ca.exists() else set()
    REPORT.append(f"build CA: {build_ca.name if build_ca.exists() else 'none'}, "
                  f"{len(extra)} certificate(s) the base image does not trust")
    for image in APP_IMAGES:
        bundle = run(image, "cat", BUNDLE)
        assert hashlib.sha256(bundle.encode()).digest() == hashlib.sha256(base_bundle.encode()).digest()
        assert not extra & certificates(bundle)
        assert run(image, "ls", "-A", "/usr/local/share/ca-certificates").strip() == ""


def test_the_installed_compose_accepts_the_file(stack):
    version = stack.compose("version").splitlines()[0]
    REPORT.append(f"compose: {version}")
    assert stack.compose("config", "--quiet") == ""
