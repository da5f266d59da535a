"""Per-feed files under CROSSWALK_HOME: the uploaded reference, profiles (gzipped JSON), Evidently HTML
reports and webhook secrets. Rows store paths relative to the home, so a moved home still resolves."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

from monitors.profile import Profile, ProfileSchemaError
from service.store.errors import Conflict

ROOT = "monitoring"


def feed_dir(home: Path, feed_id: int) -> Path:
    return home / ROOT / f"feed-{feed_id}"


def relative(home: Path, path: Path) -> str:
    return path.relative_to(home).as_posix()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bytes(home: Path, path: Path, data: bytes) -> tuple[str, str]:
    """Write atomically (temp file + rename), readable by the service's user only (0600 from creation,
    whatever the umask: uploads hold patient-level rows, secrets sign webhooks); returns (relative path, sha256)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)  # a leftover from a crash: O_EXCL below must create a fresh file
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    temporary.replace(path)
    return relative(home, path), sha256_bytes(data)


def write_profile(home: Path, path: Path, profile: Profile) -> tuple[str, str]:
    data = gzip.compress(json.dumps(profile.to_dict(), separators=(",", ":")).encode(), compresslevel=5, mtime=0)
    return write_bytes(home, path, data)


def read_checked(home: Path, relative_path: str, sha256: str) -> bytes:
    """A kept file's bytes, refused when missing or changed since its row recorded it."""
    path = home / relative_path
    if not path.is_file():
        raise Conflict(f"{relative_path}: kept file missing under {home}; restore CROSSWALK_HOME from backup")
    data = path.read_bytes()
    if sha256_bytes(data) != sha256:
        raise Conflict(f"{relative_path}: kept file changed since it was recorded (sha256 mismatch)")
    return data


def read_profile(home: Path, relative_path: str, sha256: str) -> Profile:
    try:
        return Profile.from_dict(json.loads(gzip.decompress(read_checked(home, relative_path, sha256))))
    except ProfileSchemaError as error:
        raise Conflict(f"{relative_path}: {error}") from None


def remove(home: Path, relative_paths: list[str]) -> None:
    """Best-effort clean-up of files written by a request that then failed."""
    for name in relative_paths:
        (home / name).unlink(missing_ok=True)
