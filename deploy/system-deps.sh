#!/usr/bin/env bash
# The Debian packages the test suite drives for real: Chromium and a CJK font (the kiosk page
# and the console in a browser), WenQuanYi Zen Hei (the TrueType CJK font embedded in every
# PDF report: reportlab cannot embed Noto's CFF outlines), the PostgreSQL server (the suite's second backend under CI),
# socat (real pty pairs for the serial-bus fault tests), poppler-utils (PDF pages as PNG) and
# ShellCheck (a test lints the deployment scripts).
# As root (CI, a fresh machine) the missing ones are installed once, before the test workers
# start, so parallel workers never race for the dpkg lock. As another user it only names what
# is missing; the tests that need it then say so and skip.
set -euo pipefail

PACKAGES="chromium fonts-noto-cjk fonts-wqy-zenhei postgresql socat poppler-utils shellcheck"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: not a Debian system; missing:$missing (their tests will skip)" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing:$missing; as root: apt-get install -y$missing (their tests will skip)" >&2
    exit 0
fi
echo "system-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
