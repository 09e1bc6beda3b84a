"""Input validation at the public boundary, written once.

Every message names the argument, what was expected and what came, e.g.
``ValueError: z must have shape (K, N, 3) with N = 4; got (5, 3)``.
"""
import numbers
import os
import signal
import sys
import sysconfig
import threading
import time
import traceback
import warnings

import numpy as np


def as_float_array(value, name):
    """``value`` as a float64 ndarray; TypeError for non-numeric input."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise TypeError(f"{name} must be a float array; got {type(value).__name__}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":          # float, signed or unsigned integer
        raise TypeError(f"{name} must be a real float array; got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


class NonFinite(ValueError):
    """An input with NaN or ±inf where rws_ref needs finite numbers (the message names the argument and entry)."""


def check_finite(arr, name):
    """NonFinite (a ValueError) naming the first NaN or ±inf entry of ``arr``."""
    if not np.isfinite(arr).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise NonFinite(f"{name} must be finite; got {arr[idx]} at index {idx}")
    return arr


def check_count(value, name, minimum=1):
    """An integer >= minimum (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


class TooLarge(ValueError):
    """Work or memory above a limit, refused before it starts (the message says how much, and how to allow
    it).  rws_ref's checks report it as "not applicable: too large", never as the user's failure."""


#: the deadlines in force in the main thread, innermost last: [end (time.monotonic()), what, seconds]
_DEADLINES = []
_OUTSIDE_HANDLER = []


def _expire(signum, frame):
    now = time.monotonic()
    due = [d for d in _DEADLINES if d[0] <= now + 1e-4]
    if not due:                             # a timer that fired early: wait for the earliest deadline
        _arm()
        return
    end, what, seconds = min(due, key=lambda d: d[0])
    _arm(minimum=0.01)                      # if the user's code swallows this, it fires again 10 ms later
    raise TimeoutError(f"{what} did not return within {seconds:g} s (the timeout)")


def _arm(minimum=1e-6):
    """Set the one real-time timer to the earliest deadline in force (at least ``minimum`` seconds ahead)."""
    signal.setitimer(signal.ITIMER_REAL, max(min(d[0] for d in _DEADLINES) - time.monotonic(), minimum))


class deadline:
    """Run the block at most ``seconds`` (None: no limit), else TimeoutError naming ``what``: ``with
    deadline(seconds, what): ...``.

    Deadlines nest: an inner one (a model method's limit inside the limit on the user's whole function)
    never cancels or extends an outer one, and an outer deadline that passes while an inner block runs
    fires there, naming the outer ``what``; if the user's code swallows the TimeoutError, it fires again as
    soon as the inner block ends.  An inner deadline that would end after an enclosing one costs nothing (the
    enclosing one is the limit).  Uses SIGALRM, so it applies in the main thread of a Unix process;
    elsewhere the block runs without a limit."""
    __slots__ = ("seconds", "what", "entry")

    def __init__(self, seconds, what):
        self.seconds, self.what, self.entry = seconds, what, None

    def __enter__(self):
        if self.seconds is None or not _IN_MAIN_THREAD():
            return self
        end = time.monotonic() + self.seconds
        if _DEADLINES and min(d[0] for d in _DEADLINES) <= end:     # an enclosing limit ends first: it is the one
            return self
        if not _DEADLINES:
            _OUTSIDE_HANDLER.append(signal.signal(signal.SIGALRM, _expire))
        self.entry = [end, self.what, self.seconds]
        _DEADLINES.append(self.entry)
        _arm()
        return self

    def __exit__(self, *exc):
        if self.entry is None:
            return False
        signal.setitimer(signal.ITIMER_REAL, 0)
        _DEADLINES.remove(self.entry)
        self.entry = None
        if _DEADLINES:
            _arm()                             # the enclosing deadlines keep their own ends
        else:
            signal.signal(signal.SIGALRM, _OUTSIDE_HANDLER.pop())
        return False


def _IN_MAIN_THREAD():
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


#: seconds one call of a user's code may take by default, on every route that runs it (check_estimator,
#: check_stochastic, check_loss, the sampler checks, the audit, one training iteration); None lifts the limit
DEFAULT_TIMEOUT = 60.0


def renamed(module, old_names):
    """A module ``__getattr__`` for names that were renamed: ``old_names`` maps an old name to the new one;
    the old name still works, with a DeprecationWarning naming the new one."""

    def __getattr__(name):
        if name in old_names:
            warnings.warn(f"{module}.{name} is deprecated; use {module}.{old_names[name]}", DeprecationWarning,
                          stacklevel=2)
            return globals_of[module][old_names[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    globals_of = {module: vars(sys.modules[module])}
    return __getattr__


def check_timeout(value, name="timeout"):
    """None, or a positive finite number of seconds."""
    if value is None:
        return None
    return check_positive(value, name)


def check_positive(value, name):
    """A positive finite number (a learning rate, a factor), as a float; bools and strings refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or not np.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


def check_fraction(value, name):
    """A number in [0, 1] (a mixing weight such as ι or δ), as a float; NaN, bools and strings refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1]; got {type(value).__name__} {value!r}")
    if not 0.0 <= float(value) <= 1.0:        # also refuses NaN
        raise ValueError(f"{name} must be in [0, 1]; got {value!r}")
    return float(value)


def check_rng(rng, name="rng"):
    """The explicit source of randomness must be a numpy.random.Generator."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)); "
                        f"got {type(rng).__name__}")
    return rng


def check_dim(value, name):
    """A model dimension: a positive integer."""
    return check_count(value, name, minimum=1)


def memory_limit():
    """Bytes one allocation may take: RWS_MEMORY_LIMIT (bytes) if set, else half the machine's memory."""
    value = os.environ.get("RWS_MEMORY_LIMIT")
    if value is not None:
        try:
            return int(float(value))
        except ValueError:
            raise ValueError(f"RWS_MEMORY_LIMIT must be a number of bytes; got {value!r}") from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2 ** 30


def check_memory(n_bytes, what):
    """ValueError, before allocating, for work whose arrays would take more than :func:`memory_limit`."""
    limit = memory_limit()
    if n_bytes > limit:
        raise TooLarge(f"{what} needs about {n_bytes / 2 ** 30:.3g} GiB, above the limit of "
                          f"{limit / 2 ** 30:.3g} GiB (half the memory; set RWS_MEMORY_LIMIT to change it)")
    return n_bytes


def check_draws(count, shape, what, copies=2):
    """Refuse drawing ``count`` × prod(shape) float64 values (with ``copies`` temporaries) over the limit."""
    return check_memory(8 * copies * int(count) * int(np.prod(shape, dtype=np.float64)), what)


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def in_rws_ref(path):
    """Whether the file ``path`` is part of rws_ref itself (not the user's code)."""
    return os.path.abspath(path).startswith(_PACKAGE)


def user_frames(err):
    """The frames of ``err``'s traceback in the user's own code: outside rws_ref and outside the installed
    libraries (the standard library, site-packages: NumPy, hypothesis, a framework), innermost last."""
    libraries = {os.path.abspath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    out = []
    for frame in traceback.extract_tb(err.__traceback__):
        path = os.path.abspath(frame.filename)
        if not (path.startswith(_PACKAGE) or frame.filename.startswith("<frozen")
                or any(path.startswith(lib) for lib in libraries)):
            out.append(frame)
    return out


def traceback_text(err):
    """The exception's type and message, then the traceback through the user's own frames (all of them when
    none is the user's)."""
    frames = user_frames(err)
    heading = "Traceback (most recent call last), your code's frames:" if frames else \
        "Traceback (most recent call last):"
    frames = frames or traceback.extract_tb(err.__traceback__)
    return (f"{type(err).__name__}: {err}\n{heading}\n"
            + "".join(traceback.format_list(frames)) + f"{type(err).__name__}: {err}\n")
