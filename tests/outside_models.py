"""Models written outside rws_ref, following only its documented protocol (docs/protocol.md).

Nothing here inherits from rws_ref or calls a private name: these are what a
user would write.  Densities use autograd.numpy so the autograd route applies.

- ``Clusters``: a 1-D mixture whose component *means* are learned too,
  z ∈ {0..C−1}, x real; guide ``ClusterGuide``, softmax of a quadratic in x.
  Required methods only (no one-pass capability), plus support(),
  joint_quadrature(), log_marginal() and summary().
- ``TwoLayerNet``: a two-layer sigmoid belief net z₁ → z₂ → x, z = (z₁, z₂)
  binary of shape (3,), x binary (4,); guide ``TwoLayerGuide``.  It has the
  one-pass capability log_joint_vjp / log_prob_vjp, support() and data_support().
- ``MixedChoice``: a category c and a real value v | c in one latent z = (c, v), declared with
  ``z_entries = (3, "real")``; guide ``MixedChoiceGuide``.  Required methods only.
"""
import itertools

import autograd
import autograd.numpy as anp
import numpy as np


def _log_softmax(a):
    top = anp.max(a, axis=-1, keepdims=True)
    return a - top - anp.log(anp.sum(anp.exp(a - top), axis=-1, keepdims=True))


class Clusters:
    """p(z) = softmax(logits), p(x|z) = N(x; means[z], scale²); θ = {logits, means}."""

    def __init__(self, n=3, scale=1.5):
        self.n, self.scale = n, scale
        self.theta_shapes = {"logits": (n,), "means": (n,)}
        self.z_shape, self.x_shape = (), ()
        self.z_domain = n

    def __repr__(self):
        return f"Clusters({self.n})"

    def init_theta(self, rng):
        return {"logits": 0.1 * rng.standard_normal(self.n), "means": np.linspace(-3.0, 3.0, self.n)
                + 0.1 * rng.standard_normal(self.n)}

    def sample(self, theta, n, rng):
        p = np.exp(_log_softmax(np.asarray(theta["logits"])))
        z = rng.choice(self.n, size=n, p=p)
        return z, np.asarray(theta["means"])[z] + self.scale * rng.standard_normal(n)

    def log_joint(self, theta, z, x):
        z = np.asarray(z, dtype=int)
        resid = (x - theta["means"][z]) / self.scale
        return _log_softmax(theta["logits"])[z] - 0.5 * resid ** 2 - np.log(self.scale) - 0.5 * np.log(2 * np.pi)

    def grad_log_joint(self, theta, z, x, weights):
        z = np.asarray(z, dtype=int)
        pi = np.exp(_log_softmax(np.asarray(theta["logits"])))
        resid = (x - theta["means"][z]) / self.scale ** 2
        return {"logits": np.bincount(z.ravel(), weights=weights.ravel(), minlength=self.n) - weights.sum() * pi,
                "means": np.bincount(z.ravel(), weights=(weights * resid).ravel(), minlength=self.n)}

    def support(self):
        return np.arange(self.n)

    def joint_quadrature(self, theta, nodes):
        xi, w = np.polynomial.hermite_e.hermegauss(nodes)
        pi = np.exp(_log_softmax(np.asarray(theta["logits"])))
        xs = (np.asarray(theta["means"])[:, None] + self.scale * xi).ravel()
        return np.repeat(np.arange(self.n), nodes), xs, (pi[:, None] * w / np.sqrt(2 * np.pi)).ravel()

    def log_marginal(self, theta, x):
        table = np.stack([self.log_joint(theta, np.full((1, len(x)), s), x)[0] for s in range(self.n)])
        top = table.max(axis=0)
        return top + np.log(np.exp(table - top).sum(axis=0))

    def summary(self, theta):
        return {"means": np.asarray(theta["means"])}


class ClusterGuide:
    """q(z|x) = softmax(a·x² + b·x + c)."""

    def __init__(self, n=3):
        self.n = n
        self.phi_shapes = {"a": (n,), "b": (n,), "c": (n,)}
        self.z_shape, self.x_shape = (), ()
        self.z_domain = n

    def __repr__(self):
        return f"ClusterGuide({self.n})"

    def init_phi(self, rng):
        return {k: 0.1 * rng.standard_normal(self.n) for k in self.phi_shapes}

    def _log_q(self, phi, x):
        x = x[:, None]
        return _log_softmax(phi["a"] * x ** 2 + phi["b"] * x + phi["c"])          # (N, C)

    def sample(self, phi, x, K, rng):
        p = np.exp(self._log_q(phi, np.asarray(x, dtype=float)))
        u = rng.random((K, len(x), 1))
        return np.minimum((u > np.cumsum(p, axis=1)).sum(axis=-1), self.n - 1)

    def log_prob(self, phi, z, x):
        z = np.asarray(z, dtype=int)
        return self._log_q(phi, x)[np.arange(len(x))[None, :], z]

    def grad_log_prob(self, phi, z, x, weights):
        z = np.asarray(z, dtype=int)
        p = np.exp(self._log_q(phi, x))
        G = -weights.sum(axis=0)[:, None] * p
        np.add.at(G, (np.broadcast_to(np.arange(len(x)), z.shape), z), weights)
        return {"a": (x ** 2) @ G, "b": x @ G, "c": G.sum(axis=0)}


def _log_bern(y, logits):
    return anp.sum(y * logits - anp.logaddexp(0.0, logits), axis=-1)


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


class TwoLayerNet:
    """z₁ ∈ {0,1} ~ Bern(sigmoid(c)); z₂ ∈ {0,1}² ~ Bern(sigmoid(U z₁ + d)); x ∈ {0,1}⁴ ~
    Bern(sigmoid(V z₂ + e)).  z = (z₁, z₂₁, z₂₂).  One-pass capability log_joint_vjp."""

    def __init__(self):
        self.theta_shapes = {"c": (1,), "U": (2, 1), "d": (2,), "V": (4, 2), "e": (4,)}
        self.z_shape, self.x_shape = (3,), (4,)
        self.z_domain = self.x_domain = "binary"

    def __repr__(self):
        return "TwoLayerNet()"

    def init_theta(self, rng):
        return {k: rng.standard_normal(s) for k, s in self.theta_shapes.items()}

    def sample(self, theta, n, rng):
        z1 = (rng.random((n, 1)) < _sigmoid(theta["c"])).astype(float)
        z2 = (rng.random((n, 2)) < _sigmoid(z1 @ theta["U"].T + theta["d"])).astype(float)
        x = (rng.random((n, 4)) < _sigmoid(z2 @ theta["V"].T + theta["e"])).astype(float)
        return np.concatenate([z1, z2], axis=1), x

    def log_joint_vjp(self, theta, z, x):
        z1, z2 = z[..., :1], z[..., 1:]
        a2 = anp.dot(z1, anp.transpose(theta["U"])) + theta["d"]
        ax = anp.dot(z2, anp.transpose(theta["V"])) + theta["e"]
        value = _log_bern(z1, theta["c"]) + _log_bern(z2, a2) + _log_bern(x, ax)

        def pullback(w):
            g1 = w[..., None] * (z1 - _sigmoid(theta["c"]))
            g2 = w[..., None] * (z2 - _sigmoid(a2))
            gx = w[..., None] * (x - _sigmoid(ax))
            return {"c": g1.sum(axis=(0, 1)), "U": np.einsum("kni,knj->ij", g2, z1), "d": g2.sum(axis=(0, 1)),
                    "V": np.einsum("kni,knj->ij", gx, z2), "e": gx.sum(axis=(0, 1))}
        return value, pullback

    def log_joint(self, theta, z, x):
        return self.log_joint_vjp(theta, z, x)[0]

    def grad_log_joint(self, theta, z, x, weights):
        return self.log_joint_vjp(theta, np.asarray(z, float), np.asarray(x, float))[1](np.asarray(weights))

    def support(self):
        return np.array(list(itertools.product([0.0, 1.0], repeat=3)))

    def data_support(self):
        return np.array(list(itertools.product([0.0, 1.0], repeat=4)))


class TwoLayerGuide:
    """q(z|x) = Π Bern(z_i; sigmoid(A x + b)_i)."""

    def __init__(self):
        self.phi_shapes = {"A": (3, 4), "b": (3,)}
        self.z_shape, self.x_shape = (3,), (4,)
        self.z_domain = self.x_domain = "binary"

    def __repr__(self):
        return "TwoLayerGuide()"

    def init_phi(self, rng):
        return {"A": 0.5 * rng.standard_normal((3, 4)), "b": np.zeros(3)}

    def sample(self, phi, x, K, rng):
        p = _sigmoid(np.asarray(x, float) @ phi["A"].T + phi["b"])
        return (rng.random((K,) + p.shape) < p).astype(float)

    def log_prob_vjp(self, phi, z, x):
        logits = anp.dot(x, anp.transpose(phi["A"])) + phi["b"]

        def pullback(w):
            G = np.einsum("kn,kni->ni", w, z) - w.sum(axis=0)[:, None] * _sigmoid(logits)
            return {"A": G.T @ x, "b": G.sum(axis=0)}
        return _log_bern(z, logits), pullback

    def log_prob(self, phi, z, x):
        return self.log_prob_vjp(phi, z, x)[0]

    def grad_log_prob(self, phi, z, x, weights):
        return self.log_prob_vjp(phi, np.asarray(z, float), np.asarray(x, float))[1](np.asarray(weights))


def clusters():
    """The import-path entry for the command line: ``tests.outside_models:clusters``."""
    model = Clusters(3)
    return {"model": model, "guide": ClusterGuide(3),
            "true_theta": {"logits": np.log([0.2, 0.3, 0.5]), "means": np.array([-4.0, 0.0, 4.0])}}


def two_layer():
    """The import-path entry for the command line: ``outside_models:two_layer``."""
    return TwoLayerNet(), TwoLayerGuide()


class ScalarNormal:
    """A scalar latent (z_shape = ()) and no parameters: z ~ N(0, 1), x | z ~ N(z, 1) — Pyro's NormalNormal RWS
    test model, written to the protocol with the reparameterization capability (grad_z_log_joint)."""
    theta_shapes, z_shape, x_shape = {}, (), ()

    def __repr__(self):
        return "ScalarNormal()"

    def init_theta(self, rng):
        return {}

    def sample(self, theta, n, rng):
        z = rng.standard_normal(n)
        return z, z + rng.standard_normal(n)

    def log_joint(self, theta, z, x):
        return -0.5 * z ** 2 - 0.5 * (x - z) ** 2 - anp.log(2 * anp.pi)

    def grad_log_joint(self, theta, z, x, weights):
        return {}

    def grad_z_log_joint(self, theta, z, x):
        return -z + (x - z)


class ScalarNormalGuide:
    """q(z | x) = N(a x + b, exp(log_s)²), reparameterized: z = a x + b + exp(log_s) ε."""
    phi_shapes, z_shape, x_shape = {"a": (), "b": (), "log_s": ()}, (), ()

    def __repr__(self):
        return "ScalarNormalGuide()"

    def init_phi(self, rng):
        return {"a": np.array(0.3), "b": np.array(0.1), "log_s": np.array(-0.2)}

    def sample(self, phi, x, K, rng):
        return self.reparameterize(phi, x, rng.standard_normal((K,) + np.shape(x)))

    def reparameterize(self, phi, x, eps):
        return phi["a"] * x + phi["b"] + anp.exp(phi["log_s"]) * eps

    def log_prob(self, phi, z, x):
        r = (z - phi["a"] * x - phi["b"]) / anp.exp(phi["log_s"])
        return -0.5 * r ** 2 - phi["log_s"] - 0.5 * anp.log(2 * anp.pi)

    def grad_log_prob(self, phi, z, x, weights):
        s = np.exp(phi["log_s"])
        r = (z - phi["a"] * x - phi["b"]) / s
        return {"a": np.array(np.sum(weights * r / s * x)), "b": np.array(np.sum(weights * r / s)),
                "log_s": np.array(np.sum(weights * (r ** 2 - 1)))}

    def grad_z_log_prob(self, phi, z, x):
        return -(z - phi["a"] * x - phi["b"]) / np.exp(2 * phi["log_s"])

    def pull_back(self, phi, x, eps, v):
        s = np.exp(phi["log_s"])
        return {"a": np.array(np.sum(v * x)), "b": np.array(np.sum(v)), "log_s": np.array(np.sum(v * s * eps))}


# -- a user's program with stochastic control flow -------------------------------------------------------
#
# A branch decides how many latents exist:   b ~ Bernoulli(sigmoid(b_logit))
#     b = 0:  one choice    c₁ ~ Categorical(softmax(c_logits)),           x ~ N(MEANS[c₁], 1)
#     b = 1:  two choices   c₁, c₂ ~ Categorical(softmax(c_logits)) i.i.d., x ~ N(MEANS[c₁] + MEANS[c₂], 1)
# The latent is the padded vector z = (b, c₁, c₂), c₂ = 0 when it does not exist (docs/protocol.md,
# "Variable-length latents"); both densities are −inf off that canonical form.

BRANCH_MEANS = np.array([-2.0, 0.5, 3.0])


def _branch_parts(z):
    z = np.asarray(z)
    b, c1, c2 = z[..., 0], np.minimum(z[..., 1], 2), np.minimum(z[..., 2], 2)
    canonical = (z[..., 0] <= 1) & (z[..., 1] <= 2) & (z[..., 2] <= 2) & ((b == 1) | (z[..., 2] == 0))
    return np.minimum(b, 1), c1, c2, canonical


def _onehot(c, n=3):
    return (np.asarray(c)[..., None] == np.arange(n)).astype(np.float64)


class Branching:
    """The program above; θ = {b_logit (), c_logits (3,)}.  Required methods and support() only."""
    theta_shapes = {"b_logit": (), "c_logits": (3,)}
    z_shape, x_shape, z_domain = (3,), (), 3

    def __repr__(self):
        return "Branching()"

    def init_theta(self, rng):
        return {"b_logit": np.array(0.1 * rng.standard_normal()), "c_logits": 0.1 * rng.standard_normal(3)}

    def support(self):
        return np.array([(0, c, 0) for c in range(3)] + [(1, c1, c2) for c1 in range(3) for c2 in range(3)])

    def sample(self, theta, n, rng):
        b = (rng.random(n) < _sigmoid(theta["b_logit"])).astype(np.int64)
        p = np.exp(_log_softmax(np.asarray(theta["c_logits"])))
        c = rng.choice(3, size=(n, 2), p=p)
        z = np.stack([b, c[:, 0], np.where(b == 1, c[:, 1], 0)], axis=1)
        return z, BRANCH_MEANS[z[:, 1]] + b * BRANCH_MEANS[z[:, 2]] + rng.standard_normal(n)

    def log_joint(self, theta, z, x):
        b, c1, c2, canonical = _branch_parts(z)
        log_pc = _log_softmax(theta["c_logits"])
        log_p = (_log_bern(b[..., None], anp.reshape(theta["b_logit"], (1,))) + log_pc[c1] + b * log_pc[c2]
                 - 0.5 * (x - BRANCH_MEANS[c1] - b * BRANCH_MEANS[c2]) ** 2 - 0.5 * np.log(2 * np.pi))
        return anp.where(canonical, log_p, -np.inf)

    def grad_log_joint(self, theta, z, x, weights):
        b, c1, c2, canonical = _branch_parts(z)
        w = np.where(canonical, weights, 0.0)
        pi = np.exp(_log_softmax(np.asarray(theta["c_logits"])))
        counts = np.einsum("kn,knc->c", w, _onehot(c1) + b[..., None] * _onehot(c2))
        return {"b_logit": np.array(np.sum(w * (b - _sigmoid(theta["b_logit"])))),
                "c_logits": counts - np.sum(w * (1 + b)) * pi}


class BranchingGuide:
    """q(b|x) = Bernoulli(sigmoid(a x + d)), q(c₁|x) = softmax(w1 x + v1), q(c₂|x, c₁) = softmax(w2 x + v2 + U[c₁])
    — its own control flow: c₂ is proposed only when b = 1.  No support() declared: the model's is the pair's."""
    phi_shapes = {"a": (), "d": (), "w1": (3,), "v1": (3,), "w2": (3,), "v2": (3,), "U": (3, 3)}
    z_shape, x_shape, z_domain = (3,), (), 3

    def __repr__(self):
        return "BranchingGuide()"

    def init_phi(self, rng):
        return {key: 0.3 * rng.standard_normal(shape) for key, shape in self.phi_shapes.items()}

    def _logits(self, phi, c1, x):
        return (phi["a"] * x + phi["d"], x[:, None] * phi["w1"] + phi["v1"],
                x[:, None] * phi["w2"] + phi["v2"] + phi["U"][c1])

    def sample(self, phi, x, K, rng):
        n = x.shape[0]
        b = (rng.random((K, n)) < _sigmoid(phi["a"] * x + phi["d"])).astype(np.int64)
        q1 = np.exp(_log_softmax(x[:, None] * phi["w1"] + phi["v1"]))
        c1 = (rng.random((K, n))[..., None] > np.cumsum(q1, axis=-1)).sum(axis=-1).clip(max=2)
        q2 = np.exp(_log_softmax(x[:, None] * phi["w2"] + phi["v2"] + phi["U"][c1]))
        c2 = (rng.random((K, n))[..., None] > np.cumsum(q2, axis=-1)).sum(axis=-1).clip(max=2)
        return np.stack([b, c1, np.where(b == 1, c2, 0)], axis=-1)

    def log_prob(self, phi, z, x):
        b, c1, c2, canonical = _branch_parts(z)
        lb, l1, l2 = self._logits(phi, c1, x)
        log_q = (_log_bern(b[..., None], anp.reshape(lb, np.shape(lb) + (1,)))
                 + anp.sum(_log_softmax(l1) * _onehot(c1), axis=-1)
                 + b * anp.sum(_log_softmax(l2) * _onehot(c2), axis=-1))
        return anp.where(canonical, log_q, -np.inf)

    def grad_log_prob(self, phi, z, x, weights):
        b, c1, c2, canonical = _branch_parts(z)
        w = np.where(canonical, weights, 0.0)
        lb, l1, l2 = self._logits(phi, c1, x)
        gb = w * (b - _sigmoid(lb))                                          # (K, N)
        g1 = w[..., None] * (_onehot(c1) - np.exp(_log_softmax(l1)))          # (K, N, 3)
        g2 = (w * b)[..., None] * (_onehot(c2) - np.exp(_log_softmax(l2)))
        return {"a": np.array(np.sum(gb * x)), "d": np.array(np.sum(gb)),
                "w1": np.einsum("knc,n->c", g1, x), "v1": g1.sum(axis=(0, 1)),
                "w2": np.einsum("knc,n->c", g2, x), "v2": g2.sum(axis=(0, 1)),
                "U": np.einsum("knj,knc->jc", _onehot(c1), g2)}


# -- a discrete choice beside a continuous value: one vector latent whose entries mix domains ------------
class MixedChoice:
    """c ~ softmax(logits), v | c ~ N(means[c], 1), x | v ~ N(v, 0.5²); z = (c, v) declares
    z_entries = (3, "real").  Required methods only; gradients by autograd."""
    theta_shapes = {"logits": (3,), "means": (3,)}
    z_shape, x_shape, z_domain, z_entries = (2,), (), "real", (3, "real")

    def __repr__(self):
        return "MixedChoice()"

    def init_theta(self, rng):
        return {"logits": 0.3 * rng.standard_normal(3), "means": np.array([-2.0, 0.0, 2.0])}

    def sample(self, theta, n, rng):
        c = rng.choice(3, size=n, p=np.exp(_log_softmax(np.asarray(theta["logits"]))))
        v = theta["means"][c] + rng.standard_normal(n)
        return np.stack([c, v], axis=-1).astype(np.float64), v + 0.5 * rng.standard_normal(n)

    def log_joint(self, theta, z, x):
        c, v = np.asarray(z[..., 0], dtype=int), z[..., 1]
        return (_log_softmax(theta["logits"])[c] - 0.5 * (v - theta["means"][c]) ** 2 - 2.0 * (x - v) ** 2
                - np.log(2 * np.pi * 0.5))

    def grad_log_joint(self, theta, z, x, weights):
        return autograd.grad(lambda t: anp.sum(weights * self.log_joint(t, z, x)))(dict(theta))


class MixedChoiceGuide:
    """q(c|x) = softmax(w·x + b), q(v|c, x) = N(k·x + m[c], exp(s)²)."""
    phi_shapes = {"w": (3,), "b": (3,), "k": (), "m": (3,), "s": ()}
    z_shape, x_shape, z_domain, z_entries = (2,), (), "real", (3, "real")

    def __repr__(self):
        return "MixedChoiceGuide()"

    def init_phi(self, rng):
        return {key: 0.3 * rng.standard_normal(shape) for key, shape in self.phi_shapes.items()}

    def sample(self, phi, x, K, rng):
        q = np.exp(_log_softmax(x[:, None] * phi["w"] + phi["b"]))
        c = (rng.random((K, len(x)))[..., None] > np.cumsum(q, axis=-1)).sum(axis=-1).clip(max=2)
        v = phi["k"] * x + phi["m"][c] + np.exp(phi["s"]) * rng.standard_normal((K, len(x)))
        return np.stack([c, v], axis=-1).astype(np.float64)

    def log_prob(self, phi, z, x):
        c, v = np.asarray(z[..., 0], dtype=int), z[..., 1]
        log_qc = anp.sum(_log_softmax(x[:, None] * phi["w"] + phi["b"]) * _onehot(c), axis=-1)
        return log_qc - 0.5 * ((v - phi["k"] * x - phi["m"][c]) / anp.exp(phi["s"])) ** 2 - phi["s"] \
            - 0.5 * np.log(2 * np.pi)

    def grad_log_prob(self, phi, z, x, weights):
        return autograd.grad(lambda p: anp.sum(weights * self.log_prob(p, z, x)))(dict(phi))
