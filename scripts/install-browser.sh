#!/usr/bin/env bash
# The browser test drives Debian's Chromium through ChromeDriver: install both when missing.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Chromium and ChromeDriver for the browser test ..."
$sudo apt-get install -y --no-install-recommends chromium chromium-driver > /dev/null \
  || { $sudo apt-get update > /dev/null && $sudo apt-get install -y --no-install-recommends chromium chromium-driver > /dev/null; }
