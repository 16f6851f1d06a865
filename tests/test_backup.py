"""``kiosk backup`` / ``kiosk restore``: an online, consistent SQLite backup with the device key.

The backup is taken while another thread keeps appending events, as the daemon would; the
restore goes into a fresh data folder and must verify and hold every event up to the
manifest's head. Tampered archives are refused before anything is put in place.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk import runlock
from kiosk.audit import NewEvent
from kiosk.audit.verify import verify_log
from kiosk.backup import BackupError, BackupRefused, Manifest, create_backup, restore_backup
from kiosk.config import AuditSettings, Settings
from kiosk.runtime import Runtime
from kiosk.store.models import Event


def sqlite_settings(folder: Path) -> Settings:
    return Settings(data_dir=folder / "var", database_url="", cabinet_id="cab-bk")


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime.open(sqlite_settings(tmp_path / "src"))
    for i in range(20):
        rt.audit.append(NewEvent(type="test.seed", payload={"i": i}))
    yield rt
    rt.close()


def member_bytes(tar: tarfile.TarFile, member: str | tarfile.TarInfo) -> bytes:
    """A file's bytes from the archive (``extractfile`` gives None for a directory or a link,
    which a backup never holds)."""
    file = tar.extractfile(member)
    assert file is not None, f"{member} is not a regular file in the archive"
    return file.read()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def events(runtime_or_settings: Runtime) -> list[tuple[int, str]]:
    with Session(runtime_or_settings.engine) as s:
        return [(e.seq, e.hash) for e in s.scalars(select(Event).order_by(Event.seq))]


def test_backup_while_appending_restores_a_verified_log(source: Runtime, tmp_path: Path) -> None:
    stop = threading.Event()
    appended: list[int] = []

    def writer() -> None:
        while not stop.is_set():
            appended.append(source.audit.append(NewEvent(type="test.busy")).seq)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(appended) < 20:  # the writer is really running before the backup starts
            threading.Event().wait(0.01)
        archive, manifest = create_backup(source.settings, tmp_path / "b.tar.gz")
        while len(appended) < 40 or appended[-1] <= manifest.audit_head_seq:
            threading.Event().wait(0.01)  # and it kept writing during and after it
    finally:
        stop.set()
        thread.join()

    assert mode_of(archive) == 0o600
    assert manifest.cabinet_id == "cab-bk" and manifest.schema_revision
    assert set(manifest.members) == {"kiosk.db", "device_key.pem"}
    assert 20 < manifest.audit_head_seq < source.audit.head()[0]

    fresh = sqlite_settings(tmp_path / "fresh")
    result = restore_backup(fresh, archive)
    assert result.verify.ok and result.moved_aside is None
    assert mode_of(fresh.device_key_path) == 0o600

    restored = Runtime.open(fresh)  # as the daemon would open it: migrated, key loaded
    try:
        assert restored.device_key.public_hex == source.device_key.public_hex
        assert restored.audit.head() == (manifest.audit_head_seq, manifest.audit_head_hash)
        # Every event up to the head, identical to the source's, and nothing after it.
        assert events(restored) == events(source)[: manifest.audit_head_seq]
        check = verify_log(restored.engine, cabinet_id="cab-bk",
                           public_key=restored.device_key.public)
        assert check.ok and check.last_seq == manifest.audit_head_seq
        restored.audit.append(NewEvent(type="test.after_restore"))  # the chain continues
        assert verify_log(restored.engine, cabinet_id="cab-bk").ok
    finally:
        restored.close()


def rewrite(archive: Path, out: Path, change: dict[str, bytes], *, manifest_too: bool) -> None:
    """Copy ``archive`` with some members replaced (and the manifest re-hashed if asked)."""
    with tarfile.open(archive, "r:gz") as tar:
        members = {m.name: member_bytes(tar, m) for m in tar.getmembers()}
    members.update(change)
    if manifest_too:
        import hashlib

        doc = json.loads(members["manifest.json"])
        for name in change:
            doc["members"][name] = hashlib.sha256(members[name]).hexdigest()
        members["manifest.json"] = json.dumps(doc).encode()
    with tarfile.open(out, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def edited_database(archive: Path, tmp_path: Path) -> bytes:
    """The archive's database with one event's payload changed, as an insider would."""
    import sqlite3

    with tarfile.open(archive, "r:gz") as tar:
        data = member_bytes(tar, "kiosk.db")
    db = tmp_path / "edit.db"
    db.write_bytes(data)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE events SET payload = '{\"i\":99}' WHERE seq = 5")
    conn.commit()
    conn.close()
    return db.read_bytes()


def test_tampered_archives_are_refused_and_nothing_is_replaced(
    source: Runtime, tmp_path: Path
) -> None:
    archive, _ = create_backup(source.settings, tmp_path / "b.tar.gz")
    target = sqlite_settings(tmp_path / "target")
    existing = Runtime.open(target)
    existing.audit.append(NewEvent(type="test.existing"))
    existing.close()
    before = (target.data_dir / "kiosk.db").read_bytes()

    changed = edited_database(archive, tmp_path)
    hashes_broken = tmp_path / "hash.tar.gz"
    rewrite(archive, hashes_broken, {"kiosk.db": changed}, manifest_too=False)
    with pytest.raises(BackupRefused, match="sha256"):
        restore_backup(target, hashes_broken)

    # A consistent manifest does not help: the audit chain catches the edit.
    chain_broken = tmp_path / "chain.tar.gz"
    rewrite(archive, chain_broken, {"kiosk.db": changed}, manifest_too=True)
    with pytest.raises(BackupRefused, match="seq 5"):
        restore_backup(target, chain_broken)

    extra = tmp_path / "extra.tar.gz"
    rewrite(archive, extra, {"../evil": b"x"}, manifest_too=False)
    with pytest.raises(BackupRefused, match="unexpected"):
        restore_backup(target, extra)

    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not a tar file")
    with pytest.raises(BackupRefused, match="not a readable"):
        restore_backup(target, garbage)

    assert (target.data_dir / "kiosk.db").read_bytes() == before
    assert not (tmp_path / "evil").exists()
    assert not any(p.name.startswith("pre-restore") for p in target.data_dir.iterdir())


def test_restore_refuses_a_running_daemon_unless_forced_and_keeps_the_old_files(
    source: Runtime, tmp_path: Path
) -> None:
    archive, _ = create_backup(source.settings, tmp_path / "b.tar.gz")
    target = sqlite_settings(tmp_path / "target")
    Runtime.open(target).close()  # a data folder with its own database and key
    old_key = target.device_key_path.read_bytes()
    with runlock.hold(target.data_dir):
        assert runlock.is_running(target.data_dir)
        with pytest.raises(BackupRefused, match="daemon is running"):
            restore_backup(target, archive)
        result = restore_backup(target, archive, force=True)
    assert not runlock.is_running(target.data_dir)
    assert result.moved_aside is not None
    assert (result.moved_aside / "device_key.pem").read_bytes() == old_key
    assert (result.moved_aside / "kiosk.db").is_file()
    assert mode_of(target.device_key_path) == 0o600
    assert target.device_key_path.read_bytes() == source.settings.device_key_path.read_bytes()


def test_restore_refuses_another_cabinets_archive(source: Runtime, tmp_path: Path) -> None:
    archive, _ = create_backup(source.settings, tmp_path / "b.tar.gz")
    other = Settings(data_dir=tmp_path / "other", database_url="", cabinet_id="cab-other")
    with pytest.raises(BackupRefused, match='cabinet_id = "cab-bk"'):
        restore_backup(other, archive)


def test_postgres_is_pointed_at_pg_dump(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://u@h/kiosk")
    with pytest.raises(BackupError, match="pg_dump"):
        create_backup(settings)
    with pytest.raises(BackupError, match="pg_dump"):
        restore_backup(settings, tmp_path / "x.tar.gz")


def test_cli_backup_and_restore(source: Runtime, tmp_path: Path) -> None:
    def kiosk(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KIOSK_DATA_DIR": str(folder / "var"), "KIOSK_DATABASE_URL": "",
               "KIOSK_CABINET_ID": "cab-bk"}
        return subprocess.run([sys.executable, "-m", "kiosk", *args], env=env, cwd=folder,
                              capture_output=True, text=True, timeout=120)

    made = kiosk(tmp_path / "src", "backup")
    assert made.returncode == 0, made.stderr
    archives = list((tmp_path / "src" / "var" / "backups").glob("kiosk-cab-bk-*.tar.gz"))
    assert len(archives) == 1 and mode_of(archives[0]) == 0o600
    with tarfile.open(archives[0]) as tar:
        manifest = Manifest.from_json(member_bytes(tar, "manifest.json").decode())
    assert manifest.audit_head_seq == source.audit.head()[0]

    (tmp_path / "dst").mkdir()
    done = kiosk(tmp_path / "dst", "restore", str(archives[0]))
    assert done.returncode == 0, done.stderr
    assert f"head seq {manifest.audit_head_seq}" in done.stdout
    verify = kiosk(tmp_path / "dst", "audit", "verify")
    assert verify.returncode == 0 and "OK" in verify.stdout

    broken = tmp_path / "broken.tar.gz"
    rewrite(archives[0], broken, {"device_key.pem": b"junk"}, manifest_too=False)
    refused = kiosk(tmp_path / "dst", "restore", str(broken))
    assert refused.returncode == 1 and "refused" in refused.stderr


def test_the_admin_tls_certificate_travels_with_the_backup(
    source: Runtime, tmp_path: Path
) -> None:
    """A replacement Pi restored from a backup answers with the fingerprint clients pinned."""
    from kiosk.tls import ensure_self_signed, self_signed_paths

    cert_file, _ = self_signed_paths(source.settings.data_dir)
    made = ensure_self_signed(cert_file.parent, names=["cab-bk", "127.0.0.1"])
    archive, manifest = create_backup(source.settings, tmp_path / "b.tar.gz")
    assert {"admin_tls.crt", "admin_tls.key"} <= set(manifest.members)
    target = sqlite_settings(tmp_path / "target")
    Runtime.open(target).close()
    ensure_self_signed(self_signed_paths(target.data_dir)[0].parent, names=["other"])
    result = restore_backup(target, archive)
    cert, key = self_signed_paths(target.data_dir)
    assert cert.read_bytes() == made.cert_file.read_bytes()
    assert key.read_bytes() == made.key_file.read_bytes() and mode_of(key) == 0o600
    assert result.moved_aside is not None and (result.moved_aside / "admin.crt").is_file()
    # a key that is not the certificate's is refused before anything is replaced
    with tarfile.open(archive) as tar:
        members = {m.name: member_bytes(tar, m) for m in tar.getmembers()}
    other = ensure_self_signed(tmp_path / "stranger", names=["x"])
    members["admin_tls.key"] = other.key_file.read_bytes()
    data = json.loads(members["manifest.json"])
    import hashlib
    data["members"]["admin_tls.key"] = hashlib.sha256(members["admin_tls.key"]).hexdigest()
    members["manifest.json"] = json.dumps(data).encode()
    forged = tmp_path / "forged.tar.gz"
    with tarfile.open(forged, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    before = cert.read_bytes()
    with pytest.raises(BackupRefused, match="not the certificate's"):
        restore_backup(target, forged, force=True)
    assert cert.read_bytes() == before
    assert not list(target.data_dir.glob(".*.restore"))  # nothing half-staged is left


def test_an_archive_with_its_checkpoints_deleted_is_refused(tmp_path: Path) -> None:
    """Issue 16 item 4 at restore: the chain of the archive's log is intact but its signed
    checkpoints were deleted (what a forger who re-chained an edit must do). Restore checks
    the log as `kiosk audit verify` does and refuses it, naming the missing checkpoint."""
    import sqlite3

    settings = Settings(data_dir=tmp_path / "src" / "var", database_url="", cabinet_id="cab-bk",
                        audit=AuditSettings(checkpoint_every=8))
    rt = Runtime.open(settings)
    for i in range(20):
        rt.audit.append(NewEvent(type="test.seed", payload={"i": i}))
    rt.close()
    archive, _ = create_backup(settings, tmp_path / "b.tar.gz")
    with tarfile.open(archive, "r:gz") as tar:
        data = member_bytes(tar, "kiosk.db")
    db = tmp_path / "no-checkpoints.db"
    db.write_bytes(data)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM checkpoints")
    conn.close()
    stripped = tmp_path / "stripped.tar.gz"
    rewrite(archive, stripped, {"kiosk.db": db.read_bytes()}, manifest_too=True)
    target = Settings(data_dir=tmp_path / "target" / "var", database_url="",
                      cabinet_id="cab-bk", audit=AuditSettings(checkpoint_every=8))
    with pytest.raises(BackupRefused, match="no signed checkpoint at seq 8"):
        restore_backup(target, stripped)
    assert not (target.data_dir / "kiosk.db").exists()
