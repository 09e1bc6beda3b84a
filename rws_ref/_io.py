"""Output files, written so that nothing is lost.

Every file rws_ref writes goes through :func:`atomic_write`: the content goes
to a temporary file in the same folder, is flushed to disk, and only then
renamed over the target, so a write that fails (a full disk, an exception, a
Ctrl-C) leaves the previous file as it was and no temporary behind.
:func:`check_output_path` runs before any long work, so a bad path is refused
at once rather than after a training run.
"""
import glob
import os
import tempfile

__all__ = ["atomic_write", "check_output_path", "TEMP_PREFIX"]

TEMP_PREFIX = ".rws-ref-tmp-"


def check_output_path(path, name, suffixes=(), overwrite=True):
    """Refuse, before any work, an output path that cannot be written.

    Parameters
    ----------
    path : str or os.PathLike
    name : the argument's name, for the message
    suffixes : accepted file endings (case-insensitive), or () for any
    overwrite : bool
        If False, an existing file is refused (nothing is replaced by surprise).

    Returns
    -------
    str, the path.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"{name} must be a file path; got {type(path).__name__} {path!r}")
    path = os.fspath(path)
    if suffixes and not path.lower().endswith(tuple(suffixes)):
        raise ValueError(f"{name} {path}: expected a file name ending in {' or '.join(suffixes)}")
    if os.path.isdir(path):
        raise ValueError(f"{name} {path} is a directory; give a file name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"{name} {path}: the folder {directory} does not exist")
    try:                                        # a real probe (os.access says yes to root on any folder)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX + "probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{name} {path}: no file can be created in the folder {directory} ({err.strerror})") \
            from None
    if not overwrite and os.path.exists(path):
        raise ValueError(f"{name} {path} exists already; refusing to replace it (choose another name, "
                         f"or allow overwriting: --overwrite on the command line, overwrite=True in Python)")
    return path


def atomic_write(path, write, binary=False):
    """Write a file by ``write(handle)`` into a temporary file beside ``path``, then rename it
    into place.  On any failure (including KeyboardInterrupt) the temporary is removed and
    the previous content of ``path``, if any, is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) \
                as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _mode(path))                 # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _mode(path):
    # the replaced file's mode, or what a plain open() would have given (0666 less the umask)
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def remove_stale_temporaries(path):
    """Remove temporaries a killed run left beside ``path`` (a kill cannot clean up after itself)."""
    path = os.fspath(path)
    pattern = os.path.join(os.path.dirname(os.path.abspath(path)), TEMP_PREFIX + os.path.basename(path) + ".*")
    for stale in glob.glob(pattern):
        try:
            os.unlink(stale)
        except OSError:
            pass
