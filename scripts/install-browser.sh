#!/usr/bin/env bash
# The browser test drives Chromium (or Chrome) through ChromeDriver: install Debian's packages
# `chromium` and `chromium-driver` when no browser and driver are on the PATH.
set -euo pipefail
browser=$(command -v chromium || command -v google-chrome || true)
if [ -n "$browser" ] && command -v chromedriver > /dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Chromium and ChromeDriver for the browser test ..."
$sudo apt-get install -y --no-install-recommends chromium chromium-driver > /dev/null \
  || { $sudo apt-get update > /dev/null && $sudo apt-get install -y --no-install-recommends chromium chromium-driver > /dev/null; }
