"""rws_ref: a NumPy reference implementation of Reweighted Wake-Sleep.

ELBO_IS, wake-θ, wake-φ and sleep-φ with hand-derived gradients, each
checked against closed forms or exact enumeration and against an autograd
route.  Sign convention: θ-gradients ascend the bound, φ-gradients descend
the inclusive KL (θ ← θ + lr·ĝ_θ, φ ← φ − lr·ĝ_φ).
"""
from . import _moved, autodiff, exact, family, protocol
from .estimators import elbo_is, log_weights, normalized_weights, sleep_phi, wake_phi, wake_step, wake_theta
from .family import (
                         DefensiveGuide,
                         defensive_wake_phi,
                         insomnia,
                         iwae_dreg_phi,
                         iwae_phi,
                         reinforce_phi,
                         rws_dreg_phi,
                         stl_phi,
                         vimco_phi,
)
from .models import (
                         BernoulliGuide,
                         DiagonalGaussianGuide,
                         GaussianMixture,
                         LinearGaussian,
                         MLPGuide,
                         Scene1D,
                         SceneGuide,
                         SigmoidBeliefNet,
                         SoftmaxLinearGuide,
)

__version__ = "0.1.0"

__all__ = ["__version__", "LinearGaussian", "DiagonalGaussianGuide", "GaussianMixture",
           "SoftmaxLinearGuide", "MLPGuide", "SigmoidBeliefNet", "BernoulliGuide", "Scene1D", "SceneGuide",
           "log_weights", "elbo_is", "normalized_weights",
           "wake_theta", "wake_phi", "sleep_phi", "wake_step",
           "insomnia", "DefensiveGuide", "defensive_wake_phi", "iwae_phi", "stl_phi",
           "iwae_dreg_phi", "rws_dreg_phi", "reinforce_phi", "vimco_phi",
           "exact", "autodiff", "family", "analysis", "protocol"]

_moved.install()


def __getattr__(name):
    """``rws_ref.analysis`` (and any moved module by its old name) without importing a wing eagerly."""
    if name in _moved.MOVED:
        import importlib
        return importlib.import_module(f"rws_ref.{name}")
    raise AttributeError(f"module 'rws_ref' has no attribute {name!r}")
