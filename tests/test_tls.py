"""The admin API over HTTPS: on whenever it listens beyond loopback, with the site's own
certificate or one the cabinet makes once and keeps (its fingerprint is what clients pin)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.config import Settings
from kiosk.errors import ConfigError
from kiosk.runtime import Runtime
from kiosk.store.models import Event
from kiosk.tls import admin_tls, ensure_self_signed, fingerprint
from tests.ports import free_port


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path / "var", **extra)  # type: ignore[arg-type]


def test_loopback_stays_plain_and_the_building_network_gets_https(tmp_path: Path) -> None:
    assert admin_tls(_settings(tmp_path)) is None  # 127.0.0.1: nobody else can listen in
    networked = _settings(tmp_path, admin_host="0.0.0.0")
    made = admin_tls(networked)
    assert made is not None and made.self_signed
    assert stat.S_IMODE(made.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(made.key_file.parent.stat().st_mode) == 0o700
    cert = x509.load_pem_x509_certificate(made.cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "cab-01" in names.get_values_for_type(x509.DNSName)
    # the next start serves the same certificate, so a client's pin stays valid
    again = admin_tls(networked)
    assert again is not None and again.fingerprint == made.fingerprint
    assert len(made.fingerprint.split(":")) == 32
    off = _settings(tmp_path, admin_host="0.0.0.0", admin_tls={"mode": "off"})
    assert admin_tls(off) is None
    chinese = _settings(tmp_path / "zh", admin_host="0.0.0.0", cabinet_id="柜-01")
    assert admin_tls(chinese) is not None  # a name a certificate cannot carry is left out


def test_the_sites_own_certificate_must_be_readable_and_its_key_must_match(
    tmp_path: Path,
) -> None:
    one = ensure_self_signed(tmp_path / "one", names=["cab-01"])
    two = ensure_self_signed(tmp_path / "two", names=["cab-01"])
    good = _settings(tmp_path, admin_tls={"mode": "on", "cert_file": one.cert_file,
                                           "key_file": one.key_file})
    served = admin_tls(good)
    assert served is not None and not served.self_signed
    assert served.fingerprint == one.fingerprint
    crossed = _settings(tmp_path, admin_tls={"mode": "on", "cert_file": one.cert_file,
                                              "key_file": two.key_file})
    with pytest.raises(ConfigError, match="the key is not the certificate's"):
        admin_tls(crossed)
    missing = _settings(tmp_path, admin_tls={"mode": "on", "cert_file": tmp_path / "nope.crt",
                                              "key_file": one.key_file})
    with pytest.raises(ConfigError, match=r"cannot read .*nope\.crt"):
        admin_tls(missing)
    with pytest.raises(ValueError, match="cert_file and key_file go together"):
        _settings(tmp_path, admin_tls={"cert_file": one.cert_file})


def test_kiosk_run_serves_the_admin_api_over_https_only(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "var"
    env = {**os.environ, "KIOSK_DATA_DIR": str(data), "KIOSK_ADMIN_PORT": str(port),
           "KIOSK_KIOSK_PORT": str(free_port()), "KIOSK_DATABASE_URL": "",
           "KIOSK_ADMIN_TLS__MODE": "on"}
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cert = data / "tls" / "admin.crt"
    try:
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and body is None:
            try:
                pinned = ssl.create_default_context(cafile=str(cert))
                body = httpx.get(f"https://127.0.0.1:{port}/api/v1/health", verify=pinned,
                                 timeout=1).json()
            except (httpx.HTTPError, OSError):
                time.sleep(0.1)
        assert body is not None and body["status"] == "ok", "no HTTPS answer within 30 s"
        with pytest.raises(httpx.HTTPError):  # plain HTTP gets no API
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
        with pytest.raises(httpx.ConnectError):  # nor does a client that trusts nobody
            httpx.get(f"https://127.0.0.1:{port}/api/v1/health", timeout=2)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    fingerprint = next(line.split("SHA-256 ")[1] for line in output.splitlines()
                       if line.startswith("kiosk: admin TLS"))
    runtime = Runtime.open(Settings(data_dir=data))
    with Session(runtime.engine) as s:
        started = s.scalars(select(Event).where(Event.type == "daemon.started")).one()
    runtime.close()
    assert json.loads(started.payload)["admin_tls"] == fingerprint  # the log says which cert


def _openssl_fingerprint(cert_file: Path) -> str:
    out = subprocess.run(["openssl", "x509", "-in", str(cert_file), "-noout", "-fingerprint",
                          "-sha256"], capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]


def test_the_pinned_fingerprint_is_the_one_openssl_prints_for_the_served_certificate(
    tmp_path: Path,
) -> None:
    """What an operator compares on the phone is what ``openssl x509 -fingerprint -sha256``
    says of the certificate the cabinet serves, also when the site's file carries its chain
    after it (the first certificate is the served one)."""
    one = ensure_self_signed(tmp_path / "one", names=["cab-01"])
    two = ensure_self_signed(tmp_path / "two", names=["cab-02"])
    assert one.fingerprint == _openssl_fingerprint(one.cert_file)
    assert one.fingerprint != two.fingerprint
    chain = tmp_path / "chain.crt"
    chain.write_bytes(one.cert_file.read_bytes() + two.cert_file.read_bytes())
    assert fingerprint(chain.read_bytes()) == one.fingerprint
    with pytest.raises(ValueError, match="no PEM certificate"):
        fingerprint(b"not a certificate\n")
