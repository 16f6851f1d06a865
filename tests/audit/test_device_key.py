"""The cabinet's signing key (A1: the log's checkpoints are signed with it), on its own.

What mutation testing found unpinned in ``kiosk/audit/device_key.py``: the key id a
verifier off the device matches checkpoints by, the first start in a data folder that does
not exist yet, and the messages that tell an operator what is wrong with a key file (a
missing file, one that is no PEM, one that holds another kind of key, a path that is a
dangling link). Real files in a temporary folder, real Ed25519 and EC keys.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from kiosk.audit import device_key
from kiosk.audit.device_key import (
    DeviceKey,
    key_id_of,
    load,
    load_or_create,
    public_bytes,
    public_from_hex,
    verify_signature,
)
from kiosk.errors import DeviceKeyError


def test_A1_the_key_id_is_the_first_16_hex_digits_of_the_public_keys_sha256(
        tmp_path: Path) -> None:
    key = load_or_create(tmp_path / "device.key")
    raw = public_bytes(key.public)
    assert len(raw) == 32
    assert key.key_id == key_id_of(key.public) == hashlib.sha256(raw).hexdigest()[:16]
    assert len(key.key_id) == 16
    # the public half travels as hex and comes back as the same key
    again = public_from_hex(key.public_hex)
    assert verify_signature(again, key.sign(b"checkpoint"), b"checkpoint")
    assert not verify_signature(again, key.sign(b"checkpoint"), b"checkpoint!")


def test_A1_first_start_makes_the_data_folder_and_a_key_only_its_owner_reads(
        tmp_path: Path) -> None:
    path = tmp_path / "var" / "keys" / "device.key"  # neither folder exists yet
    made = load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(path).key_id == made.key_id  # loaded, never made again


def test_a_public_key_that_is_not_one_is_named() -> None:
    with pytest.raises(DeviceKeyError, match=r"^not an Ed25519 public key: "):
        public_from_hex("00ff")


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    with pytest.raises(DeviceKeyError, match=rf"^device key {path} does not exist$"):
        load(path)


def test_a_key_path_that_is_a_dangling_link_is_refused_not_overwritten(tmp_path: Path) -> None:
    """The key file appears between the check and the exclusive create (here: a link to
    nowhere, which the exclusive create refuses as it refuses a file made meanwhile): the
    cabinet loads what is there, and says so when nothing usable is."""
    path = tmp_path / "device.key"
    os.symlink(tmp_path / "nowhere.key", path)
    with pytest.raises(DeviceKeyError, match=rf"^device key {path} does not exist$"):
        load_or_create(path)
    assert not (tmp_path / "nowhere.key").exists()  # nothing written through the link


def test_a_key_file_that_is_no_pem_is_named(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    path.write_bytes(b"not a key\n")
    path.chmod(0o600)
    with pytest.raises(DeviceKeyError, match=rf"^device key {path} is not a valid PEM key: "):
        load(path)


def test_a_key_file_of_another_kind_is_named(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path.chmod(0o600)
    with pytest.raises(DeviceKeyError, match=rf"^device key {path} is not an Ed25519 key$"):
        load(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_key_others_can_read_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "device.key"
    load_or_create(path)
    path.chmod(mode)
    with pytest.raises(DeviceKeyError, match=(
            rf"^device key {path} has mode {mode:04o}; it must be readable by its owner only "
            rf"\(chmod 600 {path}\)$")):
        load(path)


def _write_key(path: Path, pem: bytes) -> Path:
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def test_A1_a_key_file_written_by_cryptography_signs_as_cryptography_does(tmp_path: Path) -> None:
    """Cabinets in the field have key files that ``cryptography`` wrote: they load, keep their
    key id (the hub pins it), and sign every message byte for byte as before (Ed25519 is
    deterministic, RFC 8032), so their old checkpoints and new ones verify alike."""
    theirs = Ed25519PrivateKey.generate()
    path = _write_key(tmp_path / "device.key", theirs.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ours = load(path)
    raw_public = theirs.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
    assert public_bytes(ours.public) == raw_public
    assert ours.key_id == hashlib.sha256(raw_public).hexdigest()[:16]
    for message in (b"", b"checkpoint 256", "柜-01 检查点".encode(), bytes(range(256)) * 40):
        assert ours.sign(message) == theirs.sign(message).hex()
        assert verify_signature(ours.public, theirs.sign(message).hex(), message)


def test_A1_a_key_file_made_here_is_the_standard_form_other_tools_read(tmp_path: Path) -> None:
    """The file the cabinet writes is the RFC 8410 PKCS #8 PEM that ``cryptography`` and
    ``openssl`` read, with the same public key; what it signs ``cryptography`` verifies."""
    made = load_or_create(tmp_path / "device.key")
    pem = (tmp_path / "device.key").read_bytes()
    assert pem == made.pem() and pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    theirs = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(theirs, Ed25519PrivateKey)
    assert theirs.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw) == public_bytes(made.public)
    public = Ed25519PublicKey.from_public_bytes(public_bytes(made.public))
    public.verify(bytes.fromhex(made.sign(b"checkpoint")), b"checkpoint")  # raises if wrong
    shown = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "device.key"), "-noout",
                            "-text"], capture_output=True, text=True, check=True).stdout
    assert shown.startswith("ED25519 Private-Key:")
    assert "".join(shown.split("pub:")[1].split()).replace(":", "") == made.public_hex


def test_A1_a_key_made_with_openssl_genpkey_is_loaded(tmp_path: Path) -> None:
    """A site that makes its device key itself (``openssl genpkey -algorithm ed25519``)."""
    path = tmp_path / "device.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(path)],
                   check=True, capture_output=True)
    path.chmod(0o600)
    key = load(path)
    expected = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform",
                               "DER"], capture_output=True, check=True).stdout[-32:]
    assert public_bytes(key.public) == expected


def test_an_encrypted_key_file_is_named_not_a_crash(tmp_path: Path) -> None:
    """A key file protected by a passphrase cannot be used unattended: named, as a bad file
    is (it once escaped as a TypeError)."""
    path = _write_key(tmp_path / "device.key", Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(DeviceKeyError, match=rf"^device key {path} is not a valid PEM key: "):
        load(path)


def test_a_pem_whose_body_is_damaged_is_named(tmp_path: Path) -> None:
    good = DeviceKey.generate().pem()
    path = _write_key(tmp_path / "device.key", good.replace(good.splitlines()[1][:8], b"!!!!!!!!"))
    with pytest.raises(DeviceKeyError, match=rf"^device key {path} is not a valid PEM key: "):
        load(path)


def _pkcs8_pem(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _wrapped(pem: bytes, width: int) -> bytes:
    """The same PEM with its base64 body broken into lines of ``width`` characters."""
    begin, body, end = pem.splitlines()[0], pem.splitlines()[1], pem.splitlines()[-1]
    lines = [body[i:i + width] for i in range(0, len(body), width)]
    return b"\n".join([begin, *lines, end]) + b"\n"


def test_A1_the_usual_key_file_is_read_without_loading_cryptography(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual form (what the cabinet, ``cryptography`` and ``openssl genpkey`` write, with
    any line ends and line width) is read here: ``cryptography`` costs the daemon about
    7 MB to import (issue 15, idle memory) and is asked only about other layouts."""
    def not_here(path: Path, pem: bytes) -> bytes:
        raise AssertionError(f"{path} was handed to cryptography")

    monkeypatch.setattr(device_key, "_seed_by_cryptography", not_here)
    theirs = Ed25519PrivateKey.generate()
    for name, pem in (("theirs.key", _pkcs8_pem(theirs)),
                      ("ours.key", DeviceKey.generate().pem()),
                      ("crlf.key", _pkcs8_pem(theirs).replace(b"\n", b"\r\n")),
                      ("wrapped.key", _wrapped(_pkcs8_pem(theirs), 20))):
        key = load(_write_key(tmp_path / name, pem))
        if name != "ours.key":
            assert key.sign(b"checkpoint") == theirs.sign(b"checkpoint").hex()


def test_A1_a_key_file_with_text_before_its_pem_is_read_by_cryptography(tmp_path: Path) -> None:
    """Another layout (here the attribute lines ``openssl pkcs12`` writes above the key)
    goes to ``cryptography``, and the key it holds is the one used."""
    theirs = Ed25519PrivateKey.generate()
    path = _write_key(tmp_path / "device.key",
                      b"Bag Attributes\n    localKeyID: 01 00 00 00\n" + _pkcs8_pem(theirs))
    assert load(path).sign(b"checkpoint") == theirs.sign(b"checkpoint").hex()


def test_an_x25519_key_of_the_same_shape_is_named_not_signed_with(tmp_path: Path) -> None:
    """An X25519 (key agreement) key's file is the same 48 bytes with another algorithm
    id: only the whole header says it is no signing key."""
    path = _write_key(tmp_path / "device.key", _pkcs8_pem(X25519PrivateKey.generate()))
    with pytest.raises(DeviceKeyError, match=rf"^device key {path} is not an Ed25519 key$"):
        load(path)


def test_a_stray_character_in_the_body_is_refused_not_read_around(tmp_path: Path) -> None:
    """A key file with one character that base64 does not know is damaged: refused with
    the file named, as ``openssl`` and ``cryptography`` refuse it, never decoded with the
    character skipped."""
    good = DeviceKey.generate().pem()
    body = good.splitlines()[1]
    path = _write_key(tmp_path / "device.key", good.replace(body, body[:10] + b"*" + body[10:]))
    with pytest.raises(DeviceKeyError, match=rf"^device key {path} is not a valid PEM key: "):
        load(path)


def test_a_signature_of_the_wrong_length_or_not_hex_is_refused_not_raised() -> None:
    key = DeviceKey.generate()
    signature = key.sign(b"m")
    assert verify_signature(key.public, signature, b"m")
    assert not verify_signature(key.public, signature[:-2], b"m")
    assert not verify_signature(key.public, "zz" + signature[2:], b"m")
    assert not verify_signature(DeviceKey.generate().public, signature, b"m")
