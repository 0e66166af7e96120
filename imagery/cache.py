"""Content-addressed on-disk cache of band arrays read onto a grid, so a rerun reads nothing remote.

An entry is ``<root>/<k[:2]>/<k>.npy`` plus ``<k>.json`` (metadata), where ``k`` is the sha256 of
everything that determines the pixels. Both files are written atomically (temp file + ``os.replace``),
the ``.npy`` first and the ``.json`` last, so the ``.json`` marks a complete entry: concurrent
processes may write the same entry, and readers never see a partial one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from imagery.atomic import atomic_path, atomic_write_json
from imagery.errors import InputError
from imagery.types import Grid

log = logging.getLogger(__name__)

#: Bump when the stored arrays change meaning (harmonisation, resampling rules), to orphan old entries.
CACHE_FORMAT_VERSION = 1
ENV_VAR = "HARBORWATCH_CACHE_DIR"


def default_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` if given, else ``$HARBORWATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/harborwatch``
    (``~/.cache/harborwatch``)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "harborwatch"


def strip_signature(href: str) -> str:
    """The href without query string or fragment: signed URLs (SAS tokens, presigned S3) change each
    time they are signed, but the pixels behind them don't."""
    parts = urlsplit(href)
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive letter)
        return href
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class Cache:
    """An on-disk cache rooted at ``root`` (see ``default_cache_dir``); counts hits and misses per process."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = default_cache_dir(root)
        if self.root.exists() and not self.root.is_dir():  # every read would fail, one by one, otherwise
            raise InputError(
                f"cache folder {self.root} is a file; give --cache-dir (or $HARBORWATCH_CACHE_DIR) a folder"
            )
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"

    def key(
        self,
        *,
        source: str,
        item_id: str,
        href: str,
        band: str,
        grid: Grid,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """sha256 of what determines the pixels: source, item, asset (unsigned), band, grid, harmonisation."""
        payload = {
            "v": CACHE_FORMAT_VERSION,
            "source": source,
            "item": item_id,
            "href": strip_signature(href),
            "band": band,
            "grid": grid.key(),
            "params": dict(params or {}),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    def get(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The stored array and metadata, or None (a miss) when absent or unreadable."""
        npy, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text())
            array = np.load(npy, allow_pickle=False)
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError) as e:  # damaged by something outside us (disk full, manual edits)
            log.warning("cache entry %s is unreadable (%s); reading again", key[:12], e)
            for p in (meta_path, npy):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            self.misses += 1
            return None
        self.hits += 1
        return array, meta

    def put(self, key: str, array: np.ndarray, meta: Mapping[str, Any] | None = None) -> Path:
        """Store ``array`` (and JSON-able ``meta``) under ``key``; returns the .npy path."""
        npy, meta_path = self._paths(key)
        with atomic_path(npy) as tmp, open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        atomic_write_json(meta_path, {"key": key, "format": CACHE_FORMAT_VERSION, **dict(meta or {})})
        return npy

    def __contains__(self, key: str) -> bool:
        npy, meta_path = self._paths(key)
        return meta_path.exists() and npy.exists()
