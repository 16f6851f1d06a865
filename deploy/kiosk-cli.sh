#!/usr/bin/env bash
# /usr/local/bin/kiosk: run the kiosk command as the service runs it, as the kiosk user,
# with the service's config and data folder (e.g. `sudo kiosk backup`, `sudo kiosk db
# upgrade`). Running it as root directly would leave root-owned database files behind.
set -euo pipefail

args=(env KIOSK_DATA_DIR=/var/lib/kiosk /opt/kiosk/venv/bin/kiosk --config /etc/kiosk/kiosk.toml "$@")
if [[ "$(id -un)" == "kiosk" ]]; then
    exec "${args[@]}"
fi
exec sudo -u kiosk -- "${args[@]}"
