"""Atomic writes: the error a user sees names the file asked for, not the temporary file beside it."""

from __future__ import annotations

import errno
import tempfile

import pytest

import imagery.atomic
from imagery.atomic import atomic_path, atomic_write_text


def test_writes_and_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "a" / "x.txt"
    atomic_write_text(out, "hello")
    assert out.read_text() == "hello" and not list(out.parent.glob(".*.part"))


def test_a_temporary_file_the_system_refuses_is_named_as_the_target(tmp_path, monkeypatch):
    # as the system raises it, naming the temporary file mkstemp tried (root ignores permissions: forced)
    def refuse(prefix, suffix, dir):
        raise PermissionError(errno.EACCES, "Permission denied", f"{dir}/{prefix}abc{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "x.geojson"
    with pytest.raises(PermissionError) as e:
        atomic_write_text(out, "x")
    assert e.value.filename == str(out) and e.value.errno == errno.EACCES


def test_a_rename_the_system_refuses_is_named_as_the_target(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(errno.EROFS, "Read-only file system", str(src), None, str(dst))

    monkeypatch.setattr(imagery.atomic.os, "replace", refuse)
    out = tmp_path / "x.geojson"
    with pytest.raises(OSError) as e:
        atomic_write_text(out, "x")
    assert e.value.filename == str(out) and e.value.errno == errno.EROFS
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_a_full_disk_while_writing_is_named_as_the_target(tmp_path):
    out = tmp_path / "x.bin"
    with pytest.raises(OSError) as e, atomic_path(out):
        raise OSError(errno.ENOSPC, "No space left on device")  # a write() on a full disk names no file
    assert e.value.filename == str(out) and e.value.errno == errno.ENOSPC
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_other_errors_inside_the_write_pass_unchanged(tmp_path):
    missing = tmp_path / "input.tif"
    error = FileNotFoundError(errno.ENOENT, "No such file or directory", str(missing))
    with pytest.raises(FileNotFoundError) as e, atomic_path(tmp_path / "x.bin"):
        raise error
    assert e.value is error and e.value.filename == str(missing)
