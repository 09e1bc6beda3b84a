"""The autograd route is itself checked: against central differences of the
surrogate values it claims to differentiate, on fixed particles."""
import numpy as np
from hypothesis import given

from rws_ref import autodiff, elbo_is, log_weights, normalized_weights

from _util import assert_tree_close, central_difference, linear_gaussian_settings


@given(linear_gaussian_settings())
def test_autograd_surrogates_equal_central_differences(s):
    model, guide, theta, phi, x, z = s
    n = x.shape[0]
    bound = lambda t: np.mean(elbo_is(log_weights(model, guide, t, phi, x, z)))
    assert_tree_close(autodiff.wake_theta(model, guide, theta, phi, x, z),
                      central_difference(bound, theta), 1e-9, floor=1.0)
    w_bar = normalized_weights(log_weights(model, guide, theta, phi, x, z))
    wake = lambda p: -np.sum(w_bar * guide.log_prob(p, z, x)) / n
    assert_tree_close(autodiff.wake_phi(model, guide, theta, phi, x, z),
                      central_difference(wake, phi), 1e-9, floor=1.0)
    weights = np.full(z.shape[:2], 0.5)
    assert_tree_close(autodiff.grad_log_joint(model, theta, z, x, weights), central_difference(
        lambda t: np.sum(weights * model.log_joint(t, z, x)), theta), 1e-9, floor=1.0)
