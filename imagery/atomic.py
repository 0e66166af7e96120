"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A reader never sees a half-written file, and an interrupted run leaves either the old file or
none, so a rerun can trust whatever exists.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to ``target``.

    An error of the system about the temporary file (it cannot be made, written or renamed: no permission, a
    read-only or full disk) is raised naming ``target``, the file the caller asked for."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would have.
        os.chmod(tmp_path, 0o666 & ~_umask())
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as e:
        renamed = _about_target(e, tmp_path, target)
        if renamed is None:
            raise
        raise renamed from e
    finally:
        if tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()


#: Errors a write raises without a file name (the disk or quota is full): they are about the file written.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _about_target(e: OSError, tmp: Path | None, target: Path) -> OSError | None:
    """``e`` as the same kind of error naming ``target`` when it is about the temporary file (named after it,
    or a full disk while writing it; ``tmp`` None: while it was being made, any name); else None."""
    named = e.filename is not None and (tmp is None or Path(os.fsdecode(e.filename)) == tmp)
    if e.errno is None or not (named or (e.filename is None and e.errno in _WRITE_ERRNOS)):
        return None
    return OSError(e.errno, e.strerror, str(target))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike[str], obj: Any, **kwargs: Any) -> Path:
    kwargs.setdefault("indent", 2)
    kwargs.setdefault("default", str)
    return atomic_write_text(target, json.dumps(obj, **kwargs) + "\n")
