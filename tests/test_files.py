"""tinydiff.files: atomic folder writes survive a crash at any point, saved folders get the
umask's permissions, and a full disk under safetensors comes back as the OSError it was."""

import errno
import os
import stat

import numpy as np
import pytest

from tinydiff import files


def test_a_crash_while_saving_leaves_the_previous_folder(tmp_path, monkeypatch):
    target = tmp_path / "model"
    files.write_folder_atomically(target, lambda d: (d / "a.txt").write_text("old"))

    def crash(tmp):
        (tmp / "a.txt").write_text("half-writ")
        raise KeyboardInterrupt  # killed mid-save

    with pytest.raises(KeyboardInterrupt):
        files.write_folder_atomically(target, crash)
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary left behind

    # a crash between the two renames of a replacement: the set-aside copy comes back
    real_rename = files.os.rename
    calls = []

    def rename_then_die(src, dst):
        calls.append((src, dst))
        real_rename(src, dst)
        if len(calls) == 1:
            raise SystemExit("power cut")

    monkeypatch.setattr(files.os, "rename", rename_then_die)
    with pytest.raises(SystemExit):
        files.write_folder_atomically(target, lambda d: (d / "a.txt").write_text("new"))
    monkeypatch.setattr(files.os, "rename", real_rename)
    assert not target.exists()
    files.recover_folder(target)
    assert (target / "a.txt").read_text() == "old"


def test_saved_folders_get_the_permissions_the_umask_gives(tmp_path):
    # as a folder the user made would, not the private 0700 of a temporary directory
    previous = os.umask(0o022)
    try:
        files.write_folder_atomically(tmp_path / "model", lambda d: (d / "a.txt").write_text("x"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "model" / "a.txt").stat().st_mode) == 0o644


def test_safetensors_write_errors_come_back_as_the_os_error(tmp_path, monkeypatch):
    """What a full tmpfs gave (tried by hand on a 400 KiB one): safetensors' own error type."""
    from safetensors import SafetensorError

    def full_disk(arrays, filename):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(files, "save_file", full_disk)
    with pytest.raises(OSError) as raised:
        files.save_arrays(tmp_path / "w.safetensors", {"w": np.zeros(2, np.float32)})
    assert raised.value.errno == errno.ENOSPC
