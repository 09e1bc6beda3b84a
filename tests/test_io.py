"""rws_ref._io: outputs are written to a temporary file, flushed to disk, then renamed into place."""
import os

import pytest

from rws_ref import _io


def test_the_content_is_on_disk_before_the_rename(tmp_path, monkeypatch):
    # the order of the system calls: fsync of the temporary's descriptor, then the rename over the target
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    _io.atomic_write(tmp_path / "out.txt", lambda handle: handle.write("hello"))
    assert calls == ["fsync", "replace"] and (tmp_path / "out.txt").read_text() == "hello"


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail(handle):
        handle.write("half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        _io.atomic_write(target, fail)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_the_file_gets_the_usual_mode_and_keeps_a_replaced_files_mode(tmp_path):
    fresh = _io.atomic_write(tmp_path / "a.txt", lambda handle: handle.write("x"))
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(fresh).st_mode & 0o777 == 0o666 & ~mask
    (tmp_path / "b.txt").write_text("y")
    os.chmod(tmp_path / "b.txt", 0o640)
    _io.atomic_write(tmp_path / "b.txt", lambda handle: handle.write("z"))
    assert os.stat(tmp_path / "b.txt").st_mode & 0o777 == 0o640


@pytest.mark.parametrize("path, words", [("", "file path"), (None, "file path")])
def test_output_paths_that_are_not_paths_are_refused(path, words):
    with pytest.raises(TypeError, match=words):
        _io.check_output_path(path, "out")


def test_output_paths_refused_before_work(tmp_path):
    (tmp_path / "exists.txt").write_text("keep")
    cases = [(tmp_path, "is a directory"), (tmp_path / "missing" / "f.txt", "does not exist"),
             (tmp_path / "f.csv", "ending in .json"), (tmp_path / "exists.txt", "exists already")]
    for path, words in cases:
        with pytest.raises(ValueError, match=words):
            _io.check_output_path(path, "out", suffixes=(".json",) if "csv" in str(path) else (),
                                  overwrite=False)
    assert (tmp_path / "exists.txt").read_text() == "keep"


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    stale = tmp_path / (_io.TEMP_PREFIX + "run.npz.abc123")
    stale.write_text("left by a kill")
    other = tmp_path / "unrelated.txt"
    other.write_text("mine")
    _io.remove_stale_temporaries(tmp_path / "run.npz")
    assert not stale.exists() and other.read_text() == "mine"
