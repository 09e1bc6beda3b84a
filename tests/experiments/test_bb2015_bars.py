"""rws-ref reproduce bb2015-bars: the bars as Bornschein and Bengio's code draws them, the true generator's exact
log-likelihood against a count over every bar configuration written here, and the command at a quick budget."""
import itertools

import numpy as np
import pytest

from rws_ref.cli import main
from rws_ref.experiments import bars, bb2015_bars


def test_a_bar_configuration_draws_its_rows_and_columns():
    y = np.zeros((1, 10))
    y[0, 1] = y[0, 5 + 3] = 1                                # row 1 and column 3
    image = bars.draw_bars(y)[0].reshape(5, 5)
    expected = np.zeros((5, 5))
    expected[1, :] = 1
    expected[:, 3] = 1
    np.testing.assert_array_equal(image, expected)


def test_the_true_log_likelihood_sums_every_configuration_that_draws_the_image():
    """log Σ_y p(y) 1[draw(y) = x], with the 1,024 configurations visited one by one in Python and each image
    drawn pixel by pixel here; images no configuration draws get −inf; the held-out mean is the one the docs
    quote."""
    held_out = bars.load_bars()[1]
    probe = np.vstack([held_out[:6], np.ones((1, 25)), np.eye(25)[:1]])       # all on; a lone pixel (impossible)
    totals = np.zeros(len(probe))
    for y in itertools.product((0, 1), repeat=10):
        picture = np.array([[1.0 if y[r] or y[5 + c] else 0.0 for c in range(5)] for r in range(5)]).ravel()
        p = np.prod([0.1 if bit else 0.9 for bit in y])
        totals += p * np.all(probe == picture, axis=1)
    with np.errstate(divide="ignore"):
        expected = np.log(totals)
    got = bars.true_log_likelihood(probe)
    assert got[-1] == -np.inf and np.all(np.isfinite(got[:-1]))
    np.testing.assert_allclose(got[:-1], expected[:-1], rtol=1e-13)
    assert bb2015_bars.true_held_out() == pytest.approx(-3.2694, abs=5e-5)


def test_the_sets_are_fixed_draws_of_the_generator():
    train, held_out = bars.load_bars()
    assert train.shape == (10_000, 25) and held_out.shape == (1_000, 25)
    again = bars.load_bars()
    assert np.array_equal(again[0], train) and np.array_equal(again[1], held_out)
    # each image a union of whole rows and columns: a pixel is on exactly when its row or its column is full
    grid = held_out.reshape(-1, 5, 5).astype(bool)
    full_rows, full_columns = grid.all(axis=2), grid.all(axis=1)
    assert np.array_equal(grid, full_rows[:, :, None] | full_columns[:, None, :])
    # the fraction of pixels on: 1 − 0.9² per pixel (its row bar or its column bar), 0.19; an image's fraction has
    # sd 0.1717 (exact, over its 36 row and column counts), the mean of 10,000 images 0.00172: within 5 of them
    # (a false failure about once in 1.7 million)
    assert abs(train.mean() - 0.19) < 5 * 0.1717 / np.sqrt(10_000)


def test_a_quick_budget_runs_through_the_command_line(tmp_path, capsys):
    out = tmp_path / "bars"
    assert main(["reproduce", "bb2015-bars", "--budget", "0.0005", "--methods", "RWS", "--jobs", "1",
                 "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "the true generator: -3.269 nats per image" in text and "RWS" in text
    assert (out / "bb2015_bars.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "bb2015_bars_images.png").read_bytes()[:4] == b"\x89PNG"
