"""The oracle of the two-site bridge tests (Pyro and NumPyro alike): the densities of the hierarchy
z1 → z2 and of the discrete choice with a continuous value (pyro_programs.py, numpyro_programs.py),
typed here in NumPy from their definitions, and the parameters the tests use."""
import numpy as np

HIER_THETA = {"a": np.array(0.2), "L": np.array([[0.3, -0.2, 0.1], [-0.4, 0.5, 0.0]]),
              "means": np.array([-2.0, 0.5, 2.0])}
HIER_PHI = {"u": np.array(0.3), "V": np.array([[0.1, 0.2, -0.3], [0.0, -0.2, 0.4]]), "r": np.array([0.2, -0.1, 0.3])}
MIXED_THETA = {"logits": np.array([0.1, -0.2, 0.3]), "means": np.array([-2.0, 0.5, 2.0])}
MIXED_PHI = {"w": np.array([0.3, -0.1, 0.2]), "b0": np.array([0.1, 0.0, -0.1]), "k": np.array(0.8),
             "m": np.array([0.2, -0.1, 0.0]), "s": np.array(-0.5)}


def _log_softmax(a):
    return a - np.log(np.sum(np.exp(a), axis=-1, keepdims=True))


def _log_normal(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd * np.sqrt(2 * np.pi))


def hier_densities(theta, phi, z, x):
    """log p(z1, z2, x) and log q(z1, z2 | x) of the Pyro hierarchy, typed here from its definition."""
    z1, z2 = z[..., 0].astype(int), z[..., 1].astype(int)
    log_bern = lambda logit, b: -np.logaddexp(0, np.where(b == 1, -logit, logit))   # noqa: E731
    log_p = (log_bern(theta["a"], z1) + np.take_along_axis(_log_softmax(theta["L"][z1]), z2[..., None], -1)[..., 0]
             + _log_normal(x, theta["means"][z2] + z1, 1.0))
    log_q = (log_bern(phi["u"] * x, z1)
             + np.take_along_axis(_log_softmax(phi["V"][z1] + phi["r"] * x[..., None]), z2[..., None], -1)[..., 0])
    return log_p, log_q


def mixed_densities(theta, phi, z, x):
    """log p(c, z, x) and log q(c, z | x) of the mixed programs, typed here from their definition."""
    c, value = z[..., 0].astype(int), z[..., 1]
    log_p = (_log_softmax(theta["logits"])[c] + _log_normal(value, theta["means"][c], 1.0)
             + _log_normal(x, value, 0.5))
    log_q = (np.take_along_axis(_log_softmax(x[:, None] * phi["w"] + phi["b0"])[None], c[..., None], -1)[..., 0]
             + _log_normal(value, phi["k"] * x + phi["m"][c], np.exp(phi["s"])))
    return log_p, log_q
