"""The cabinet's Ed25519 signing key, made at first start and kept with file mode 0600.

The private key never leaves the device; the public key is exported with every checkpoint
so a verifier off the device can check signatures without trusting the cabinet.

Why PyNaCl (libsodium) and not ``cryptography``: the daemon signs a checkpoint every few
hundred events and checks signatures in the scheduler, so whichever library signs is held
in memory for the daemon's whole life. ``cryptography`` carries its own OpenSSL and costs
about 7 MB of resident memory to import; libsodium about 1 MB (issue 15: idle RSS). Both
implement RFC 8032, whose signatures are deterministic: the same key signs the same bytes
identically with either (``tests/audit/test_device_key.py`` checks this against
``cryptography``, which the TLS certificate code still uses, loaded only when it runs).

The key file stays what it always was: a PEM ``PRIVATE KEY`` holding the RFC 8410 PKCS #8
form of the 32-byte seed (what ``cryptography`` and ``openssl genpkey -algorithm ed25519``
write). That form is a fixed 16-byte DER header and the seed, so it is read and written here;
any other PKCS #8 layout (one carrying its public key too, or another algorithm) goes to
``cryptography`` to be read or named.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from kiosk.errors import DeviceKeyError

PublicKey = VerifyKey
"""An Ed25519 public key (a checkpoint's or a cabinet's, pinned at the hub)."""

PKCS8_ED25519_HEADER = bytes.fromhex("302e020100300506032b657004220420")
"""RFC 8410 section 7: SEQUENCE { version 0, AlgorithmIdentifier { id-Ed25519 },
OCTET STRING { OCTET STRING (32 bytes) } }; the 32-byte seed follows."""
PEM_BEGIN = b"-----BEGIN PRIVATE KEY-----"
PEM_END = b"-----END PRIVATE KEY-----"


def key_id_of(public: PublicKey) -> str:
    """A short, stable name for a public key: SHA-256 of its raw bytes, first 16 hex digits."""
    return hashlib.sha256(public_bytes(public)).hexdigest()[:16]


def public_bytes(public: PublicKey) -> bytes:
    return bytes(public)


def public_from_hex(value: str) -> PublicKey:
    try:
        return VerifyKey(bytes.fromhex(value))
    except ValueError as exc:  # bad hex, or not 32 bytes (nacl's error is a ValueError)
        raise DeviceKeyError(f"not an Ed25519 public key: {exc}") from None


def verify_signature(public: PublicKey, signature_hex: str, message: bytes) -> bool:
    """False for a wrong signature, a signature that is not 64 bytes of hex, or a public key
    libsodium refuses (a small-order point)."""
    try:
        public.verify(message, bytes.fromhex(signature_hex))
    except (BadSignatureError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class DeviceKey:
    """A loaded signing key with its public half and id."""

    private: SigningKey

    @classmethod
    def generate(cls) -> DeviceKey:
        """A new key from the operating system's random source (libsodium)."""
        return cls(SigningKey.generate())

    @property
    def public(self) -> PublicKey:
        return self.private.verify_key

    @property
    def key_id(self) -> str:
        return key_id_of(self.public)

    @property
    def public_hex(self) -> str:
        return public_bytes(self.public).hex()

    def sign(self, message: bytes) -> str:
        return self.private.sign(message).signature.hex()

    def pem(self) -> bytes:
        """The key file's bytes: PEM of the RFC 8410 PKCS #8 form, 64 characters a line."""
        body = base64.b64encode(PKCS8_ED25519_HEADER + bytes(self.private))
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return b"\n".join([PEM_BEGIN, *lines, PEM_END]) + b"\n"


def load_or_create(path: Path) -> DeviceKey:
    """Load the device key, creating it (mode 0600, never overwriting) on first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = DeviceKey.generate()
        pem = key.pem()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load(path)  # another process made it first: use theirs
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        return key
    return load(path)


def load(path: Path) -> DeviceKey:
    """Load an existing key; refuse one that other users can read."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise DeviceKeyError(f"device key {path} does not exist") from None
    if mode & 0o077:
        raise DeviceKeyError(
            f"device key {path} has mode {mode:04o}; it must be readable by its owner only "
            f"(chmod 600 {path})"
        )
    return DeviceKey(SigningKey(_seed(path, path.read_bytes())))


def _seed(path: Path, pem: bytes) -> bytes:
    """The 32-byte seed in a key file: read here when it is the usual RFC 8410 form, else by
    ``cryptography`` (which names what is wrong with it)."""
    text = pem.strip()
    if text.startswith(PEM_BEGIN) and text.endswith(PEM_END):
        try:
            der = base64.b64decode(b"".join(text[len(PEM_BEGIN):-len(PEM_END)].split()),
                                   validate=True)
        except binascii.Error:
            der = b""
        if len(der) == len(PKCS8_ED25519_HEADER) + 32 and der.startswith(PKCS8_ED25519_HEADER):
            return der[len(PKCS8_ED25519_HEADER):]
    return _seed_by_cryptography(path, pem)


def _seed_by_cryptography(path: Path, pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise DeviceKeyError(f"device key {path} is not a valid PEM key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DeviceKeyError(f"device key {path} is not an Ed25519 key")
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
