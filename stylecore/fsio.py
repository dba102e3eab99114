"""Atomic file writes, the one implementation: a hidden temporary sibling, fsync, then a rename.

A reader never sees a half-written file, and a failed or interrupted write (KeyboardInterrupt too)
leaves the previous file as it was and no temporary file behind. Temporary names are
``.<name>.<random>.tmp`` in the target's folder, so the rename never crosses a filesystem.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: Literal["wb", "w"] = "wb", **open_kw: Any) -> Iterator[IO[Any]]:
    """Write ``path`` through a file object: what the block wrote replaces ``path`` when it exits
    cleanly; an exception removes the temporary file and propagates. ``open_kw`` go to ``open``
    (text mode: ``newline``, ``encoding``; UTF-8 by default)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files ('wb' or 'w'), not {mode!r}")
    if mode == "w":
        open_kw.setdefault("encoding", "utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (getattr(os, "O_BINARY", 0) if mode == "wb" else 0)
    # 0o666 lets the umask decide the permissions, as for any new file (mkstemp would force 0600)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, mode, **open_kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically; returns the path."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; returns the path."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_copy(src: str | Path, dest: str | Path) -> Path:
    """Copy ``src`` over ``dest`` atomically; returns ``dest``."""
    with open(src, "rb") as source, atomic_open(dest, "wb") as fh:
        shutil.copyfileobj(source, fh)
    return Path(dest)


@contextlib.contextmanager
def restored_on_error(paths: list[Path]) -> Iterator[None]:
    """Files written together: if the block raises, each of ``paths`` is put back as it was before it
    (a file that did not exist is removed), so a set of files and the record of their checksums never
    disagree after a failed write. Holds the old bytes in memory."""
    old = {p: p.read_bytes() for p in paths if p.is_file()}
    try:
        yield
    except BaseException:
        for p in paths:
            with contextlib.suppress(OSError):
                if p in old:
                    atomic_write_bytes(p, old[p])
                else:
                    p.unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform/filesystem, so best effort.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
