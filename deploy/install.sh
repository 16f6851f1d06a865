#!/usr/bin/env bash
# Install or update the key cabinet on Raspberry Pi OS Bookworm (64-bit). Run from a checkout:
#
#     sudo ./deploy/install.sh
#
# Safe to run again (updates use the same command): packages are only added, the user and
# the venv are made once, /etc/kiosk/kiosk.toml is never overwritten, and a running
# service is restarted on the new code. See docs/deploy.md.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY="$REPO/deploy"
PREFIX=/opt/kiosk
VENV="$PREFIX/venv"
CONF_DIR=/etc/kiosk
STATE_DIR=/var/lib/kiosk
SERVICE=kiosk
USER_NAME=kiosk
REBOOT_NEEDED=0

log() { printf '\033[1minstall:\033[0m %s\n' "$*"; }

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install.sh: run as root (sudo $0)" >&2
    exit 2
fi

# ----------------------------------------------------------------------------- packages
apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]})); then
        log "apt: installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

apt_available() {
    apt-cache show "$1" >/dev/null 2>&1
}

log "apt: updating the package lists"
apt-get update -q
apt_install python3 python3-venv python3-dev build-essential sqlite3 curl \
    fonts-noto-cjk fonts-wqy-zenhei
# lgpio builds against liblgpio (Raspberry Pi OS ships it); swig is its build tool.
for optional in swig liblgpio-dev; do
    if apt_available "$optional"; then apt_install "$optional"; fi
done
# Raspberry Pi OS calls it chromium-browser; Debian calls it chromium.
if apt_available chromium-browser; then
    apt_install chromium-browser
else
    apt_install chromium
fi

# ----------------------------------------------------------------------- SPI and the UART
if command -v raspi-config >/dev/null 2>&1; then
    if [[ "$(raspi-config nonint get_spi)" != "0" ]]; then
        log "raspi-config: enabling SPI (MFRC522 reader)"
        raspi-config nonint do_spi 0
        REBOOT_NEEDED=1
    fi
    # The UART for an RS-485 HAT or a PN532: hardware on, login console off.
    if raspi-config nonint get_serial_hw >/dev/null 2>&1; then
        if [[ "$(raspi-config nonint get_serial_hw)" != "0" ]]; then
            log "raspi-config: enabling the serial port hardware"
            raspi-config nonint do_serial_hw 0
            REBOOT_NEEDED=1
        fi
        if [[ "$(raspi-config nonint get_serial_cons)" != "1" ]]; then
            log "raspi-config: disabling the serial login console"
            raspi-config nonint do_serial_cons 1
            REBOOT_NEEDED=1
        fi
    elif [[ "$(raspi-config nonint get_serial 2>/dev/null || echo 1)" != "1" ]]; then
        log "raspi-config: serial console off, hardware on (older raspi-config)"
        raspi-config nonint do_serial 2
        REBOOT_NEEDED=1
    fi
else
    log "raspi-config not found: enable SPI and the UART yourself (docs/deploy.md)"
fi

# ------------------------------------------------------------------------- user and venv
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
    log "creating the system user $USER_NAME"
    useradd --system --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
        "$USER_NAME"
fi
for group in gpio spi dialout plugdev; do
    if getent group "$group" >/dev/null; then
        usermod -a -G "$group" "$USER_NAME"
    fi
done

install -d -m 0755 "$PREFIX"
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating the virtual environment $VENV"
    python3 -m venv "$VENV"
fi
log "installing the cabinet software (with the pi extra) into $VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet --upgrade "${REPO}[pi]"
# The version number may not have changed since the last install: replace the code anyway.
"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps "$REPO"
install -d -m 0755 "$PREFIX/docs"
install -m 0644 "$REPO/docs/deploy.md" "$REPO/docs/hardware.md" "$PREFIX/docs/"

# ------------------------------------------------------------------------ config and state
install -d -m 0750 -o root -g "$USER_NAME" "$CONF_DIR"
if [[ ! -e "$CONF_DIR/kiosk.toml" ]]; then
    log "writing $CONF_DIR/kiosk.toml from the example: edit [hardware] before starting"
    install -m 0640 -o root -g "$USER_NAME" "$DEPLOY/kiosk.toml.example" "$CONF_DIR/kiosk.toml"
fi
install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$STATE_DIR"

install -m 0755 "$DEPLOY/kiosk-cli.sh" /usr/local/bin/kiosk
install -m 0755 "$DEPLOY/kiosk-screen.sh" /usr/local/bin/kiosk-screen

# --------------------------------------------------------------------- systemd and journal
install -m 0644 "$DEPLOY/kiosk.service" "/etc/systemd/system/$SERVICE.service"
install -d -m 0755 /etc/systemd/journald.conf.d
if ! cmp -s "$DEPLOY/journald-kiosk.conf" /etc/systemd/journald.conf.d/kiosk.conf; then
    install -m 0644 "$DEPLOY/journald-kiosk.conf" /etc/systemd/journald.conf.d/kiosk.conf
    install -d -m 2755 -g systemd-journal /var/log/journal
    systemctl restart systemd-journald
fi
systemctl daemon-reload
systemctl enable "$SERVICE.service" >/dev/null

# ----------------------------------------------------------------------- the touchscreen
install -d -m 0755 /etc/xdg/autostart
install -m 0644 "$DEPLOY/kiosk-screen.desktop" /etc/xdg/autostart/kiosk-screen.desktop

# ------------------------------------------------------------------------------- finish
if systemctl is-active --quiet "$SERVICE.service"; then
    log "restarting the running service on the new code"
    systemctl restart "$SERVICE.service"
fi
log "done. Next (docs/deploy.md): edit $CONF_DIR/kiosk.toml, then"
log "  sudo kiosk db upgrade && sudo kiosk admin create admin && sudo systemctl start $SERVICE"
if ((REBOOT_NEEDED)); then
    log "SPI/UART settings changed: reboot before starting the cabinet (sudo reboot)"
fi
