"""Time limits on a user's model and guide: every method call (and every pullback it returns) must
return within a number of seconds, else TimeoutError naming the method (main thread, Unix: SIGALRM)."""
from .. import protocol
from .._checks import DEFAULT_TIMEOUT, check_timeout, deadline

__all__ = ["Timed", "timed", "DEFAULT_TIMEOUT"]


#: the methods and capabilities a time limit applies to (protocol, capabilities, reparameterization)
_TIMED = protocol.MODEL_METHODS + protocol.GUIDE_METHODS + ("log_joint_vjp", "log_prob_vjp", "support", "data_support",
                                          "joint_quadrature", "log_marginal", "kl_grad_phi", "sleep_target",
                                          "summary", "posterior", "grad_z_log_joint", "reparameterize",
                                          "grad_z_log_prob", "pull_back", "mean")


class Timed:
    """A model or guide whose every method (and every pullback they return) must return within ``seconds``,
    else TimeoutError naming the method: what rws_ref wraps a user's pair in when a timeout is asked for."""

    def __init__(self, inner, seconds):
        self.inner, self.seconds = inner, check_timeout(seconds)
        for attr in ("theta_shapes", "phi_shapes", "z_shape", "x_shape", "z_domain", "x_domain", "z_entries",
                     "closed_forms", "unserved"):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))
        for name in _TIMED:
            method = getattr(inner, name, None)
            if callable(method):
                setattr(self, name, self._limited(method, f"{inner!r}.{name}"))

    def __repr__(self):
        return repr(self.inner)

    def _limited(self, method, what):
        def call(*args, **kwargs):
            with deadline(self.seconds, what):
                out = method(*args, **kwargs)
            if isinstance(out, tuple) and len(out) == 2 and callable(out[1]):        # a (value, pullback) pair
                return out[0], self._limited(out[1], f"{what} pullback")
            return out
        return call


def timed(obj, seconds):
    """``obj`` itself without a time limit (``seconds`` None), else a :class:`Timed` wrapper."""
    return obj if seconds is None else Timed(obj, seconds)
