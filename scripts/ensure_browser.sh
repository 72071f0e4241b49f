#!/usr/bin/env bash
# Install Debian's chromium and its chromedriver when they are missing: the
# browser tests (tests/ui/) drive them through Selenium. Root installs them
# with apt-get; anyone else is told the command.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure_browser: chromium and chromedriver are missing; run:" >&2
    echo "  sudo apt-get install -y chromium chromium-driver" >&2
    exit 1
fi
echo "ensure_browser: installing chromium and chromium-driver"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
