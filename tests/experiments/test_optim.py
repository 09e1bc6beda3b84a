"""rws_ref.experiments.optim: SGD and Adam ascend the direction they are given; Adam against its published update."""
import numpy as np
import pytest

from rws_ref.experiments.optim import SGD, Adam


def test_adam_matches_kingma_and_ba_written_out_for_a_scalar():
    # Algorithm 1 of Kingma & Ba (2015), for ascent: θ_t = θ_{t−1} + α m̂_t / (√v̂_t + ε)
    rng = np.random.default_rng(0)
    directions = rng.standard_normal(5)
    opt, params = Adam(0.1), {"a": np.array([0.3])}
    theta, m, v = 0.3, 0.0, 0.0
    for t, g in enumerate(directions, start=1):
        params = opt.step(params, {"a": np.array([g])})
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        theta += 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        assert params["a"][0] == pytest.approx(theta, rel=1e-14)


def test_sgd_ascends_and_keeps_no_state():
    assert SGD(0.5).step({"a": np.array([1.0])}, {"a": np.array([2.0])})["a"][0] == 2.0
    assert SGD(0.5).state() == ({}, {})
    with pytest.raises(ValueError, match="SGD keeps no state"):
        SGD(0.5).load({"m/a": np.zeros(1)}, {})


def test_adam_state_round_trips_and_bad_state_is_refused():
    opt = Adam(0.01)
    params = opt.step({"a": np.ones(2)}, {"a": np.array([1.0, -2.0])})
    arrays, meta = opt.state()
    again = Adam(0.01)
    again.load(arrays, meta, {"a": (2,)})
    direction = {"a": np.array([0.5, 0.5])}
    assert np.array_equal(opt.step(params, direction)["a"], again.step(params, direction)["a"])
    with pytest.raises(ValueError, match="v must be >= 0"):
        Adam(0.01).load({"m/a": np.zeros(2), "v/a": -np.ones(2)}, {"t": 1}, {"a": (2,)})
    with pytest.raises(ValueError, match="step count"):
        Adam(0.01).load({}, {"t": -1})
    for bad in (0.0, -1.0, float("nan"), True, "0.1"):
        with pytest.raises(ValueError, match="lr"):
            Adam(bad)
