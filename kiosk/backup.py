"""Backing up and restoring a cabinet: the SQLite database and the device key, in one archive.

The backup is *online*: it uses SQLite's backup API, which copies a consistent snapshot
while the daemon keeps writing (WAL mode lets it). The archive (``.tar.gz``, mode 0600
because it holds the private signing key) contains::

    manifest.json    format, created_at, cabinet_id, schema revision, audit head seq/hash,
                     sha256 of every other member
    kiosk.db         the snapshot, a self-contained file (journal_mode=DELETE)
    device_key.pem   the Ed25519 device key (absent if this data folder has none)
    admin_tls.crt    the admin API's self-signed certificate and its key (absent if the
    admin_tls.key    cabinet never made one), so a replacement keeps the pinned fingerprint

A restore trusts nothing in the archive until it has checked it: every member against the
manifest's hash, the audit chain and signed checkpoints of the restored database
(``verify_log``) and its head against the manifest. Only then are the files put in place;
what they replace is moved aside, never deleted, because an audit log is evidence.

PostgreSQL is not handled here: ``pg_dump``/``pg_restore`` are the tools for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from kiosk.audit.device_key import load as load_device_key
from kiosk.audit.verify import VerifyResult, verify_log
from kiosk.config import Settings
from kiosk.errors import KioskError
from kiosk.runlock import is_running
from kiosk.tls import pair_problem, self_signed_paths

FORMAT = "kiosk-backup/1"
MANIFEST = "manifest.json"
DATABASE = "kiosk.db"
DEVICE_KEY = "device_key.pem"
TLS_CERT = "admin_tls.crt"
TLS_KEY = "admin_tls.key"
MEMBERS = (DATABASE, DEVICE_KEY, TLS_CERT, TLS_KEY)
PG_MESSAGE = (
    "this cabinet uses PostgreSQL: back it up with pg_dump (e.g. pg_dump -Fc -f kiosk.dump "
    "DBNAME) and restore with pg_restore; copy the device key ({key}) separately and keep "
    "it mode 0600"
)


class BackupError(KioskError):
    """A backup or restore that cannot be done as asked (wrong database kind, bad path)."""


class BackupRefused(BackupError):
    """The archive failed a check, or restoring would overwrite something it must not."""


@dataclass(frozen=True)
class Manifest:
    created_at: str
    cabinet_id: str
    schema_revision: str | None
    audit_head_seq: int
    audit_head_hash: str
    members: dict[str, str] = field(default_factory=dict)
    """Member name → sha256 hex digest."""
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            doc: dict[str, Any] = json.loads(text)
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            members = {str(k): str(v) for k, v in dict(doc["members"]).items()}
            return cls(
                created_at=str(doc["created_at"]),
                cabinet_id=str(doc["cabinet_id"]),
                schema_revision=doc["schema_revision"],
                audit_head_seq=int(doc["audit_head_seq"]),
                audit_head_hash=str(doc["audit_head_hash"]),
                members=members,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupRefused(f"the manifest is unreadable: {exc}") from None


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    verify: VerifyResult
    database: Path
    moved_aside: Path | None


# ------------------------------------------------------------------------------ helpers
def sqlite_path(settings: Settings) -> Path:
    """The SQLite file of ``settings``, or ``BackupError`` naming the tool for PostgreSQL."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupError(PG_MESSAGE.format(key=settings.device_key_path))
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    return Path(url.database)


def _check_owner(path: Path) -> None:
    """Refuse to run as root on the daemon's files: SQLite would leave root-owned -wal/-shm
    files (and a restore root-owned files) that the ``kiosk`` user can no longer write."""
    if os.geteuid() == 0 and path.exists() and path.stat().st_uid != 0:
        raise BackupError(f"run this as the user that owns {path}, not root "
                          f"(e.g. sudo -u kiosk /opt/kiosk/venv/bin/kiosk ...)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _closing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """sqlite3's own context manager commits but does not close; this one closes."""
    try:
        yield conn
    finally:
        conn.close()


def _snapshot(source: Path, target: Path) -> None:
    """A consistent copy of ``source`` made while other connections may be writing.

    ``backup()`` with the default ``pages=-1`` copies every page in one step under one
    read transaction, so the copy is one committed state of the database; in WAL mode the
    daemon's writers are not blocked meanwhile. The copy is switched to a rollback journal
    so the archived file is complete on its own (no -wal beside it).
    """
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    with _closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)) as src, \
            _closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")


def _describe_snapshot(db: Path, cabinet_id: str) -> tuple[str | None, int, str]:
    """Schema revision and audit head of the snapshot (not of the live database)."""
    with _closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        head = conn.execute(
            "SELECT seq, hash FROM audit_heads WHERE cabinet_id = ?", (cabinet_id,)
        ).fetchone()
    revision = str(row[0]) if row else None
    seq, digest = (int(head[0]), str(head[1])) if head else (0, "0" * 64)
    return revision, seq, digest


def _utc_stamp(now: dt.datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


# ------------------------------------------------------------------------------- backup
def default_archive(settings: Settings, now: dt.datetime) -> Path:
    return settings.data_dir / "backups" / f"kiosk-{settings.cabinet_id}-{_utc_stamp(now)}.tar.gz"


def create_backup(settings: Settings, out: Path | None = None) -> tuple[Path, Manifest]:
    """Write an archive of the database snapshot and the device key; return it and its manifest.

    The archive is written to a temporary name and renamed, so a half-written backup (power
    cut, full disk) never looks like a good one.
    """
    source = sqlite_path(settings)
    _check_owner(source)
    now = dt.datetime.now(dt.UTC)
    out = out or default_archive(settings, now)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kiosk-backup-") as tmp:
        work = Path(tmp)
        _snapshot(source, work / DATABASE)
        revision, seq, digest = _describe_snapshot(work / DATABASE, settings.cabinet_id)
        members = {DATABASE: _sha256(work / DATABASE)}
        tls_cert, tls_key = self_signed_paths(settings.data_dir)
        for name, path in ((DEVICE_KEY, settings.device_key_path),
                           *(((TLS_CERT, tls_cert), (TLS_KEY, tls_key))
                             if tls_cert.is_file() and tls_key.is_file() else ())):
            if path.is_file():
                shutil.copyfile(path, work / name)
                members[name] = _sha256(work / name)
        manifest = Manifest(
            created_at=now.isoformat(), cabinet_id=settings.cabinet_id,
            schema_revision=revision, audit_head_seq=seq, audit_head_hash=digest,
            members=members,
        )
        partial = out.with_name(out.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # the archive holds the private key, whatever the umask
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                data = manifest.to_json().encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode, info.mtime = len(data), 0o600, int(now.timestamp())
                tar.addfile(info, io.BytesIO(data))
                for name in members:
                    tar.add(work / name, arcname=name, recursive=False,
                            filter=_private_member)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
        _fsync_dir(out.parent)
    return out, manifest


def _private_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
    return info


# ------------------------------------------------------------------------------ restore
def _unpack(archive: Path, into: Path) -> Manifest:
    """Extract the manifest and the known members only, as plain files, checking each hash.

    Nothing else in the archive is extracted: no links, no paths outside ``into``.
    """
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            found: dict[str, tarfile.TarInfo] = {}
            for info in tar.getmembers():
                if info.name in found:
                    raise BackupRefused(f"the archive holds {info.name!r} twice")
                found[info.name] = info
            if MANIFEST not in found:
                raise BackupRefused("the archive has no manifest.json: not a kiosk backup")
            manifest = Manifest.from_json(_read_member(tar, found[MANIFEST]).decode())
            unexpected = set(found) - {MANIFEST, *MEMBERS}
            if unexpected:
                raise BackupRefused(f"unexpected members in the archive: {sorted(unexpected)}")
            if set(manifest.members) != set(found) - {MANIFEST} or DATABASE not in found:
                raise BackupRefused(
                    f"the archive's members {sorted(set(found) - {MANIFEST})} differ from its "
                    f"manifest's {sorted(manifest.members)}"
                )
            for name, expected in manifest.members.items():
                data = _read_member(tar, found[name])
                if hashlib.sha256(data).hexdigest() != expected:
                    raise BackupRefused(f"{name} does not match the manifest's sha256: "
                                        f"the archive was changed or damaged")
                fd = os.open(into / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupRefused(f"{archive} is not a readable backup archive: {exc}") from None
    return manifest


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    if not info.isfile():
        raise BackupRefused(f"archive member {info.name!r} is not a regular file")
    fh = tar.extractfile(info)
    if fh is None:
        raise BackupRefused(f"archive member {info.name!r} cannot be read")
    with fh:
        return fh.read()


def _verify_restored(db: Path, key: Path | None, manifest: Manifest,
                     checkpoint_every: int) -> VerifyResult:
    """The archive's log must verify as ``kiosk audit verify`` would: chain, head, and a signed
    checkpoint at every ``checkpoint_every`` boundary, so an archive whose checkpoints were
    deleted after re-chaining is refused, not restored (issue 16, item 4)."""
    public = load_device_key(key).public if key is not None else None
    # Read-only and without the daemon's pragmas: checking must not change the file.
    engine = create_engine(f"sqlite:///file:{db.as_posix()}?mode=ro&uri=true")
    try:
        result = verify_log(engine, cabinet_id=manifest.cabinet_id, public_key=public,
                            checkpoint_every=checkpoint_every)
    finally:
        engine.dispose()
    if not result.ok:
        problems = "; ".join(str(p) for p in result.problems[:5])
        raise BackupRefused(f"the restored audit log does not verify: {problems}")
    revision, seq, digest = _describe_snapshot(db, manifest.cabinet_id)
    if (seq, digest) != (manifest.audit_head_seq, manifest.audit_head_hash):
        raise BackupRefused(
            f"the database's audit head (seq {seq}) is not the manifest's "
            f"(seq {manifest.audit_head_seq})"
        )
    if revision != manifest.schema_revision:
        raise BackupRefused(f"schema revision {revision} differs from the manifest's "
                            f"{manifest.schema_revision}")
    return result


def restore_backup(settings: Settings, archive: Path, *, force: bool = False) -> RestoreResult:
    """Check ``archive`` completely, then put its database and device key in place.

    Refuses while a daemon runs on this data folder (``--force`` overrides, for when the
    operator knows better), and when the archive is of another cabinet: the config's
    ``cabinet_id`` must match, or the restored chain would be continued under a new name.
    """
    target = sqlite_path(settings)
    _check_owner(settings.data_dir)
    if is_running(settings.data_dir) and not force:
        raise BackupRefused(
            f"a kiosk daemon is running on {settings.data_dir}: stop it first "
            f"(systemctl stop kiosk) or pass --force"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Unpack next to the target so the final rename stays on one file system (atomic).
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=target.parent) as tmp:
        work = Path(tmp)
        manifest = _unpack(archive, work)
        if manifest.cabinet_id != settings.cabinet_id:
            raise BackupRefused(
                f"the archive is of cabinet {manifest.cabinet_id!r} but this config says "
                f"{settings.cabinet_id!r}: set cabinet_id = \"{manifest.cabinet_id}\" first"
            )
        key = work / DEVICE_KEY if DEVICE_KEY in manifest.members else None
        result = _verify_restored(work / DATABASE, key, manifest,
                                  settings.audit.checkpoint_every)
        # every file that goes in place, staged beside its final path (renames are atomic)
        # (the TLS pair first: it is the one that may still be refused)
        placed = _staged_tls(work, manifest, settings.data_dir)
        if key is not None:
            placed.append((_stage_key(key, settings.device_key_path), settings.device_key_path))
        aside = _move_aside(settings, target, [final for _, final in placed])
        os.replace(work / DATABASE, target)
        for staged, final in placed:
            os.replace(staged, final)
        for folder in {target.parent, *(final.parent for _, final in placed)}:
            _fsync_dir(folder)
    return RestoreResult(manifest, result, target, aside)


def _stage_key(key: Path, final: Path) -> Path:
    """Copy the key beside its final place (mode 0600 from birth) so the rename is atomic."""
    staged = final.with_name(f".{final.name}.restore")
    staged.unlink(missing_ok=True)
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.read_bytes())
        fh.flush()
        os.fsync(fh.fileno())
    return staged


def _staged_tls(work: Path, manifest: Manifest, data_dir: Path) -> list[tuple[Path, Path]]:
    """The admin API certificate and key from the archive, checked to be a pair, staged."""
    have = {TLS_CERT, TLS_KEY} & set(manifest.members)
    if not have:
        return []
    if have != {TLS_CERT, TLS_KEY}:
        raise BackupRefused(f"the archive holds {sorted(have)} without its pair")
    problem = pair_problem((work / TLS_CERT).read_bytes(), (work / TLS_KEY).read_bytes())
    if problem:
        raise BackupRefused(f"the archive's admin TLS certificate and key: {problem}")
    cert_file, key_file = self_signed_paths(data_dir)
    cert_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return [(_stage_key(work / TLS_CERT, cert_file), cert_file),
            (_stage_key(work / TLS_KEY, key_file), key_file)]


def _move_aside(settings: Settings, target: Path, replaced: list[Path]) -> Path | None:
    """Move the current database (with its -wal/-shm) and every file the restore replaces
    (device key, admin TLS certificate and key) into a dated folder."""
    candidates = (target, target.with_name(target.name + "-wal"),
                  target.with_name(target.name + "-shm"), settings.device_key_path, *replaced)
    present = [p for p in dict.fromkeys(candidates) if p.exists()]
    if not present:
        return None
    aside = settings.data_dir / f"pre-restore-{_utc_stamp(dt.datetime.now(dt.UTC))}"
    aside.mkdir(mode=0o700, parents=True, exist_ok=False)
    for path in present:
        shutil.move(path, aside / path.name)  # the database may be on another file system
    return aside
