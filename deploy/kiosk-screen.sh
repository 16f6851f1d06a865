#!/usr/bin/env bash
# /usr/local/bin/kiosk-screen: wait for the daemon's screen listener, then show it in
# Chromium kiosk mode. Started by the desktop session (kiosk-screen.desktop).
#
# Waiting first matters: Chromium started before the daemon would show its own error page
# instead of the kiosk page (which reconnects by itself once loaded).
set -euo pipefail

URL="${KIOSK_SCREEN_URL:-http://127.0.0.1:8081/}"

browser=""
for candidate in chromium-browser chromium; do
    if command -v "$candidate" >/dev/null 2>&1; then
        browser="$candidate"
        break
    fi
done
if [[ -z "$browser" ]]; then
    echo "kiosk-screen: no chromium-browser or chromium installed" >&2
    exit 1
fi

for _ in $(seq 1 300); do
    if curl --silent --fail --max-time 2 --output /dev/null "$URL"; then
        break
    fi
    sleep 1
done

# Restart the browser if it ever exits (crash, out of memory): the screen must not stay blank.
while true; do
    "$browser" --kiosk --noerrdialogs --disable-session-crashed-bubble --incognito \
        --disable-infobars --check-for-update-interval=31536000 \
        --overscroll-history-navigation=0 "$URL" || true
    sleep 2
done
