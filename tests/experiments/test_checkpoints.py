"""rws_ref.experiments.checkpoints: what a run writes is read back exactly, and only rws-ref checkpoints are read."""
import json

import numpy as np
import pytest

from rws_ref import GaussianMixture, SoftmaxLinearGuide
from rws_ref.experiments.checkpoints import CHECKPOINT_VERSION, load_checkpoint, provenance
from rws_ref.experiments.train import TrainConfig, train


def test_a_checkpoint_round_trips_every_field(tmp_path):
    model, guide = GaussianMixture(4, scale=6.0), SoftmaxLinearGuide(4, loc=15.0, scale=10.0)
    x = model.sample(model.true_theta(), 50, np.random.default_rng(1))[1]
    result = train(model, guide, x, TrainConfig(K=3, iters=12, batch_size=10, eval_every=4, seed=5),
                   checkpoint=tmp_path / "run.npz", checkpoint_every=5)
    state = load_checkpoint(tmp_path / "run.npz")
    assert state["iteration"] == 12 and state["config"]["K"] == 3 and state["config"]["method"] == "wake"
    assert all(np.array_equal(state["theta"][k], result.theta[k]) for k in result.theta)
    assert all(np.array_equal(state["phi"][k], result.phi[k]) for k in result.phi)
    assert json.dumps(state["history"]) == json.dumps(result.history)
    assert state["opt_theta_meta"] == {"t": 12} and set(state["opt_theta"]) == {"m/logits", "v/logits"}
    assert state["provenance"] == provenance(model, guide, x)
    assert state["rng"]["bit_generator"] == "PCG64"


def test_the_provenance_tells_data_apart_by_content():
    model, guide = GaussianMixture(3), SoftmaxLinearGuide(3)
    a, b = np.zeros(4), np.zeros(4)
    b[2] = 1e-300
    assert provenance(model, guide, a)["data_sha256"] != provenance(model, guide, b)["data_sha256"]
    assert provenance(model, guide, a)["theta_shapes"] == {"logits": [3]}


def test_another_version_is_refused(tmp_path):
    meta = {"version": CHECKPOINT_VERSION + 1}
    np.savez(tmp_path / "new.npz", meta=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match=f"version {CHECKPOINT_VERSION + 1}, expected {CHECKPOINT_VERSION}"):
        load_checkpoint(tmp_path / "new.npz")
