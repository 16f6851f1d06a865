"""The cabinet's Ed25519 signing key, made at first start and kept with file mode 0600.

The private key never leaves the device; the public key is exported with every checkpoint
so a verifier off the device can check signatures without trusting the cabinet.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.errors import DeviceKeyError


def key_id_of(public: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: SHA-256 of its raw bytes, first 16 hex digits."""
    return hashlib.sha256(public_bytes(public)).hexdigest()[:16]


def public_bytes(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_from_hex(value: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))
    except ValueError as exc:
        raise DeviceKeyError(f"not an Ed25519 public key: {exc}") from None


def verify_signature(public: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        public.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class DeviceKey:
    """A loaded signing key with its public half and id."""

    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public)

    @property
    def public_hex(self) -> str:
        return public_bytes(self.public).hex()

    def sign(self, message: bytes) -> str:
        return self.private.sign(message).hex()


def load_or_create(path: Path) -> DeviceKey:
    """Load the device key, creating it (mode 0600, never overwriting) on first start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load(path)  # another process made it first: use theirs
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        return DeviceKey(key)
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
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise DeviceKeyError(f"device key {path} is not a valid PEM key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DeviceKeyError(f"device key {path} is not an Ed25519 key")
    return DeviceKey(key)
