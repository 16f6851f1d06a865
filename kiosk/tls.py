"""HTTPS for the admin API: which certificate, made once if the site brings none.

The admin API carries passwords (``/auth/login``) and bearer tokens. On the building network
they must not travel in clear, so the daemon serves HTTPS whenever the API listens beyond
loopback (``admin_tls.mode = "auto"``). A site with its own PKI sets ``cert_file`` and
``key_file``; otherwise the cabinet makes a self-signed certificate once, keeps it in
``DATA_DIR/tls/`` (the key readable by the daemon's user only) and prints its SHA-256
fingerprint, which clients pin (``curl --cacert``, Prometheus ``ca_file``). The same
certificate is reused on every start, so a pin stays valid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from kiosk.config import Settings
from kiosk.errors import ConfigError

log = logging.getLogger(__name__)

SELF_SIGNED_DAYS = 3650
"""Ten years: a pinned self-signed certificate is trusted for itself, not for its dates,
and a cabinet must not stop answering its administrators because a year went by."""


@dataclass(frozen=True)
class TlsFiles:
    """The certificate and key uvicorn serves, and what an administrator pins."""

    cert_file: Path
    key_file: Path
    fingerprint: str
    """SHA-256 of the DER certificate, ``AB:CD:...`` as browsers and openssl show it."""
    self_signed: bool


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def wanted(settings: Settings) -> bool:
    mode = settings.admin_tls.mode
    return mode == "on" or (mode == "auto" and not is_loopback(settings.admin_host))


def admin_tls(settings: Settings) -> TlsFiles | None:
    """The files to serve the admin API with, or None for plain HTTP (loopback, or off)."""
    if not wanted(settings):
        if not is_loopback(settings.admin_host):
            log.warning("admin API on %s without TLS (admin_tls.mode = off): passwords and "
                        "tokens cross the network in clear", settings.admin_host)
        return None
    tls = settings.admin_tls
    if tls.cert_file is not None and tls.key_file is not None:
        return _site_files(tls.cert_file, tls.key_file)
    return ensure_self_signed(self_signed_paths(settings.data_dir)[0].parent,
                              names=_names(settings))


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the (first) certificate's DER bytes, as ``openssl x509 -fingerprint``
    prints it: what a client pins. Computed with the standard library, not ``cryptography``:
    it runs at every start of a cabinet serving HTTPS, and ``cryptography`` would then stay
    in the daemon's memory for nothing (about 7 MB, issue 15)."""
    match = _PEM_CERTIFICATE.search(cert_pem)
    if match is None:
        raise ValueError("no PEM certificate")
    der = ssl.PEM_cert_to_DER_cert(match.group(0).decode("ascii"))
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----")
"""The first certificate of a PEM file (a site's file may carry its chain after it)."""


def _site_files(cert_file: Path, key_file: Path) -> TlsFiles:
    """The site's own certificate: readable, PEM, and the key belongs to it."""
    try:
        cert_pem, key_pem = cert_file.read_bytes(), key_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"admin_tls: cannot read {exc.filename}: {exc.strerror}") from None
    problem = pair_problem(cert_pem, key_pem)
    if problem:
        raise ConfigError(f"admin_tls: {cert_file} / {key_file}: {problem}")
    return TlsFiles(cert_file, key_file, fingerprint(cert_pem), self_signed=False)


def pair_problem(cert_pem: bytes, key_pem: bytes) -> str | None:
    """Why these are not a PEM certificate and its own unencrypted key, or None."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        return f"not a PEM certificate and unencrypted PEM key ({exc})"
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        return "the key is not the certificate's"
    return None


def _names(settings: Settings) -> list[str]:
    """Names a client may use for this cabinet: its host name, its id, loopback, and the
    address it listens on when that is a specific one."""
    names = [socket.gethostname(), settings.cabinet_id, "localhost", "127.0.0.1", "::1"]
    if settings.admin_host not in ("0.0.0.0", "::"):  # a specific address, not "all"
        names.append(settings.admin_host)
    # a DNS name in a certificate is ASCII (a cabinet id may be 柜-01: it is left out)
    return list(dict.fromkeys(n for n in names if n and n.isascii()))


def self_signed_paths(data_dir: Path) -> tuple[Path, Path]:
    """Where the cabinet keeps the certificate it made (``kiosk backup`` carries both, so a
    replacement Pi answers with the same fingerprint and no client has to re-pin)."""
    return data_dir / "tls" / "admin.crt", data_dir / "tls" / "admin.key"


def ensure_self_signed(folder: Path, *, names: list[str]) -> TlsFiles:
    """Reuse the certificate in ``folder``, or make one (EC P-256) the first time."""
    cert_file, key_file = folder / "admin.crt", folder / "admin.key"
    if cert_file.exists() and key_file.exists():
        return TlsFiles(cert_file, key_file, fingerprint(cert_file.read_bytes()), True)
    cert_pem, key_pem = _make_self_signed(names)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # the key is written 0600 from the start, never readable by others even for a moment
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    cert_file.write_bytes(cert_pem)
    files = TlsFiles(cert_file, key_file, fingerprint(cert_pem), True)
    log.info("made a self-signed admin API certificate %s (SHA-256 %s)", cert_file,
             files.fingerprint)
    return files


def _make_self_signed(names: list[str]) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "key cabinet")])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        # its own trust anchor: a client pins this very certificate (--cacert)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=False, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
