"""The exact oracle: bias and variance of estimators with no Monte Carlo error.

Split by method:

- :mod:`~rws_ref.exact.enumeration` — multisets of K particles on a finite
  latent support: exact ELBO_IS, the exact mean and variance of any symmetric
  estimator, and the exact gradient of the bound;
- :mod:`~rws_ref.exact.laplace` — the Laplace-transform route for
  self-normalized estimators at any K (and a scalar continuous latent);
- :mod:`~rws_ref.exact.targets` — what the φ estimators aim at (∇_φ KL, the
  sleep target) and the constants of their bias.

The model-specific closed forms live beside their models
(:mod:`rws_ref.models.linear_gaussian_exact`); the oracle reaches them only
through the capabilities of the protocol (docs/protocol.md).
"""
from .enumeration import (
                          DEFAULT_MAX_TERMS,
                          TooLarge,
                          elbo_is,
                          grad_elbo_is,
                          grad_elbo_is_any_route,
                          moments,
                          multisets,
                          n_multisets,
)
from .laplace import scalar_laplace
from .targets import chi2, joint_points, kl_grad_phi, sleep_moments, sleep_target, wake_phi_bias_constant

__all__ = ["n_multisets", "multisets", "elbo_is", "moments", "grad_elbo_is", "grad_elbo_is_any_route", "kl_grad_phi",
           "chi2", "wake_phi_bias_constant", "sleep_target", "sleep_moments", "scalar_laplace",
           "DEFAULT_MAX_TERMS", "TooLarge", "joint_points"]
