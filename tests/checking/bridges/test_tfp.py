"""docs/recipes/tfp_vimco_recipe.py against real TensorFlow Probability (JAX substrate): TFP's
csiszar_vimco, fed rws_ref's particles through a 14-line glue, is −1 × rws_ref's VIMCO (averaged over
the data); the same glue with the Csiszar function's sign flipped is reported as the wrong way."""
import importlib.util
import pathlib

import numpy as np
import pytest

pytest.importorskip("tensorflow_probability.substrates.jax")
RECIPE = pathlib.Path(__file__).parents[3] / "docs" / "recipes" / "tfp_vimco_recipe.py"


def recipe():
    spec = importlib.util.spec_from_file_location("tfp_vimco_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tfps_vimco_is_rws_refs_vimco_averaged_over_the_data():
    r = recipe()
    report = r.testing.check_loss(lambda th, ph, x, z: r.vimco_loss(th, ph, r.jnp.asarray(x),
                                                                    r.jnp.asarray(z, dtype=int)),
                                  "vimco_phi", r.model, r.guide)
    text = str(report)
    assert report.ok, text
    assert "θ-gradient = −1 × wake-θ" in text and "φ-gradient = −1 × vimco-φ" in text, text
    assert "value = −1 × mean ELBO_IS" in text, text


def test_tfps_vimco_with_the_csiszar_sign_flipped_moves_the_wrong_way():
    r = recipe()
    tfp, jax, jnp = r.tfp, r.jax, r.jnp

    def flipped(theta, phi, x, z):
        x, z = jnp.asarray(x), jnp.asarray(z, dtype=int)

        def surrogate(th, ph):
            return jnp.mean(tfp.vi.csiszar_vimco(lambda logu: logu, lambda zz: r.log_joint(th, zz.reshape(z.shape), x)
                                                 .reshape(zz.shape), r.ForcedQ(ph, x, z), num_draws=z.shape[0],
                                                 seed=jax.random.PRNGKey(0)))
        value, (g_theta, g_phi) = jax.value_and_grad(surrogate, argnums=(0, 1))(theta, phi)
        return float(value), g_theta, g_phi
    report = r.testing.check_loss(flipped, "vimco_phi", r.model, r.guide)
    assert not report.ok
    assert "φ-gradient = 1 × vimco-φ: its sign makes minimizing the loss move the wrong way" in str(report)
    assert np.isfinite(report.parts[0].factor)
