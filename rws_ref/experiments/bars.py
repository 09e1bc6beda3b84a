"""The bars problem of Bornschein and Bengio (2015)'s code (its ``BarsData``, facts only): 5×5 binary images,
each of the 5 horizontal and 5 vertical bars on independently with probability 1/10, a pixel on when a bar
through it is on.  The true generator is known, so the data's exact log-likelihood under it is too: what the
best model can reach.

``true_log_likelihood(x)`` sums p(y) over the 2^10 bar configurations y that draw each image (several draw the
same one: five horizontal bars on cover every vertical bar).  The fixed sets of the experiment: 10,000 training
images and 1,000 held out, from seeds 2015 and 2016.
"""
import numpy as np

from .._checks import check_count, check_rng

__all__ = ["SIDE", "BAR_PROB", "draw_bars", "sample_bars", "true_log_likelihood", "load_bars"]

SIDE, BAR_PROB = 5, 0.1
N_TRAIN, N_HELD_OUT = 10_000, 1_000


def draw_bars(y):
    """The images of bar configurations ``y`` (N, 2·SIDE) 0/1 — first the rows, then the columns — as (N, SIDE²)
    float 0/1: pixel (r, c) is on when row bar r or column bar c is."""
    y = np.asarray(y, dtype=bool)
    rows, columns = y[:, :SIDE], y[:, SIDE:]
    return (rows[:, :, None] | columns[:, None, :]).reshape(len(y), SIDE * SIDE).astype(np.float64)


def sample_bars(n, rng):
    """(y, x): ``n`` bar configurations and their images from the true generator."""
    y = check_rng(rng).random((check_count(n, "n"), 2 * SIDE)) < BAR_PROB
    return y.astype(np.float64), draw_bars(y)


def _codes(x):
    return (np.asarray(x) > 0.5).astype(np.int64) @ (1 << np.arange(SIDE * SIDE, dtype=np.int64))


def true_log_likelihood(x):
    """log p_true(x_n) for images ``x`` (N, SIDE²): log Σ_y p(y) 1[draw(y) = x_n] over the 2^(2·SIDE)
    configurations; −inf for an image no configuration draws."""
    y = ((np.arange(2 ** (2 * SIDE))[:, None] >> np.arange(2 * SIDE)) & 1).astype(np.float64)
    on = y.sum(axis=1)
    log_py = on * np.log(BAR_PROB) + (2 * SIDE - on) * np.log1p(-BAR_PROB)
    codes = _codes(draw_bars(y))
    unique, inverse = np.unique(codes, return_inverse=True)
    total = np.zeros(len(unique))
    np.add.at(total, inverse, np.exp(log_py))
    wanted = _codes(x)
    where = np.minimum(np.searchsorted(unique, wanted), len(unique) - 1)
    with np.errstate(divide="ignore"):
        return np.where(unique[where] == wanted, np.log(total[where]), -np.inf)


def load_bars():
    """(train (10000, 25), held_out (1000, 25)): the fixed sets, float 0/1."""
    return sample_bars(N_TRAIN, np.random.default_rng(2015))[1], sample_bars(N_HELD_OUT, np.random.default_rng(2016))[1]
