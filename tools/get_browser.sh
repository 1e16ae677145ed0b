#!/usr/bin/env bash
# The browser check of `make test` (tests/test_browser.py) needs Chromium and its driver. Install Debian's packages
# where this machine allows it (as root, or with password-less sudo; apt waits up to 10 minutes for another
# package manager's lock); otherwise fail at once with one line saying what to install.
set -u
have() {
  { command -v chromium || command -v chromium-browser || command -v google-chrome || command -v google-chrome-stable; } \
    >/dev/null 2>&1 &&
  { command -v chromedriver >/dev/null 2>&1 || [ -x "${CHROMEWEBDRIVER:-/nonexistent}/chromedriver" ]; }
}
if have; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then sudo="sudo -n"; else sudo="none"; fi
fi
if [ "$sudo" != "none" ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser: installing Debian's chromium and chromium-driver for the browser check (waiting up to 10 min for the apt lock) ..."
  log=$(mktemp)
  lock="-o DPkg::Lock::Timeout=600"
  # shellcheck disable=SC2086
  if $sudo apt-get $lock update -qq >"$log" 2>&1 &&
     $sudo env DEBIAN_FRONTEND=noninteractive apt-get $lock install -y -qq chromium chromium-driver >>"$log" 2>&1 &&
     have; then
    rm -f "$log"
    echo "browser: Chromium installed"
    exit 0
  fi
  echo "browser: apt-get could not install chromium chromium-driver; apt said:" >&2
  tail -n 5 "$log" | sed 's/^/  apt: /' >&2
  rm -f "$log"
fi
echo "error: make test needs Chromium and chromedriver for its browser check: install them (Debian/Ubuntu, as root: apt-get install chromium chromium-driver), or run 'make unit' for the tests that need no browser" >&2
exit 1
