"""Plain PyTorch bridge: RWS code written with ``torch.nn`` and ``torch.distributions`` — no
probabilistic-programming framework — as an rws_ref protocol pair, and its losses checked on rws_ref's
particles and end to end.

Hand over your densities, the modules (or dicts of tensors) that hold θ and φ, and a batch::

    bridge = Bridge(model.log_prob, guide.log_prob, model, guide, x, latent=one_hot(20),
                    sample_model=model.sample, sample_guide=guide.sample)
    print(bridge.check_loss(lambda x: my_wake_phi_loss(model, guide, x, K), "wake_phi"))
    print(bridge.check_end_to_end(lambda x: my_wake_phi_loss(model, guide, x, K), "wake_phi", K=K))

``log_joint(z, x)`` and ``log_prob(z, x)`` take particles (K, N, *your z shape) and the batch, and return
(K, N) log densities with the parameters they read from your modules.  θ and φ are the modules'
``named_parameters()`` (values in float64: call ``.double()`` on a module first).

:meth:`Bridge.check_loss` runs your loss with rws_ref's particles forced into your own sampling code:
inside :class:`Draws`, every ``sample`` / ``rsample`` of a ``torch.distributions`` distribution whose
result has the shape of rws_ref's particles (K, N, …) — or of its dreams — returns them instead (for
``rsample`` of a Normal, loc + scale · rws_ref's noise ε).  No library is patched for longer than one
call of your loss, and a forced array your code never drew is an error naming the shapes it did draw.
:meth:`Bridge.check_end_to_end` runs the same loss with your own draws, R times, and compares the mean
of its gradient (divided by the multiple :meth:`check_loss` found) with the exact mean of the estimator
(:func:`rws_ref.checking.endtoend.check_stochastic`).
"""
import contextlib

import numpy as np

from .common import DensityBridge, Layout

try:
    import torch
except ImportError as err:                      # pragma: no cover - the extra is not installed
    raise ImportError("rws_ref.checking.bridges.plain_torch needs PyTorch: pip install torch") from err

__all__ = ["Bridge", "Draws", "Encoding", "one_hot"]


class Encoding:
    """How your code writes the latent, beside rws_ref's form of it (``z_shape``, ``z_domain``):
    ``encode`` turns rws_ref's particles (a float64 tensor) into yours, ``decode`` yours into rws_ref's.
    Without them: your latent is rws_ref's, category indices as int64 (torch.long)."""

    def __init__(self, z_shape, z_domain, encode=None, decode=None):
        self.z_shape, self.z_domain = tuple(z_shape), z_domain
        self._encode, self._decode = encode, decode

    def encode(self, z):
        if self._encode is not None:
            return self._encode(z)
        return z.long() if isinstance(self.z_domain, int) else z

    def numpy(self, z):
        """rws_ref's particles (NumPy, in the domain's dtype) from yours."""
        z = (self._decode(z) if self._decode is not None else z).detach().numpy()
        return z.astype(np.int64) if isinstance(self.z_domain, int) else np.array(z, dtype=np.float64)


def one_hot(C):
    """Your latent is a one-hot vector of length ``C`` (``OneHotCategorical``); rws_ref's is the category."""
    return Encoding((), int(C), lambda z: torch.nn.functional.one_hot(z.long(), int(C)).to(torch.float64),
                    lambda z: z.argmax(-1))


def _distribution_classes():
    """torch.distributions.Distribution and every subclass defined so far (the user's own included)."""
    seen, todo = [], [torch.distributions.Distribution]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return seen


class Draws:
    """Within the block, draws of ``torch.distributions`` distributions return forced values.

    ``values``: (role, tensor) pairs, e.g. ``[("particles", z), ("dreamt x", x)]``; a draw whose result
    shape is a tensor's shape returns that tensor (two of one shape: in turn, in the order given).  With
    ``noise``, an ``rsample`` of a Normal returns loc + scale · the tensor.  The distributions' own methods
    are put back when the block ends; :attr:`drawn` lists the shapes of the draws left alone."""

    def __init__(self, values, noise=False):
        self.values, self.noise = list(values), noise
        self.used = [0] * len(self.values)
        self.drawn = []
        self._saved, self._inside = [], False

    def _forced(self, dist, shape, reparameterized):
        matches = [i for i, (_, v) in enumerate(self.values) if tuple(v.shape) == tuple(shape)]
        if not matches:
            self.drawn.append(tuple(shape))
            return None
        i = min(matches, key=lambda j: (self.used[j], j))
        self.used[i] += 1
        value = self.values[i][1]
        if self.noise and reparameterized and i == 0:
            if type(dist).__name__ != "Normal":
                raise TypeError(f"rws_ref forces noise only into Normal draws; this draw of shape {tuple(shape)} is "
                                f"from {type(dist).__name__}")
            return dist.loc + dist.scale * value
        if "Integer" in type(dist.support).__name__:           # Categorical and its kind draw int64 indices
            return value.long()
        return value.to(torch.float64)

    def _wrap(self, cls, name, method):
        draws = self

        def draw(dist, sample_shape=torch.Size()):
            if draws._inside:                   # a draw inside a draw (OneHotCategorical draws a Categorical)
                return method(dist, sample_shape)
            forced = draws._forced(dist, dist._extended_shape(torch.Size(sample_shape)), name == "rsample")
            if forced is not None:
                return forced
            draws._inside = True
            try:
                return method(dist, sample_shape)
            finally:
                draws._inside = False
        draw.__wrapped__ = method
        return draw

    def __enter__(self):
        for cls in _distribution_classes():
            for name in ("sample", "rsample"):
                if name in cls.__dict__:
                    self._saved.append((cls, name, cls.__dict__[name]))
                    setattr(cls, name, self._wrap(cls, name, cls.__dict__[name]))
        return self

    def __exit__(self, *exc):
        for cls, name, method in reversed(self._saved):
            setattr(cls, name, method)
        self._saved = []
        return False

    def unused(self):
        """The roles of the forced values no draw took."""
        return [role for (role, _), n in zip(self.values, self.used) if n == 0]


def _parameters(holder, what):
    """name → the leaf tensor of each parameter in ``holder``: an nn.Module's named_parameters(), or a dict of
    tensors; float64 only."""
    if isinstance(holder, torch.nn.Module):
        params = dict(holder.named_parameters())
    elif isinstance(holder, dict):
        params = dict(holder)
    elif holder is None:
        params = {}
    else:
        raise TypeError(f"{what} must be a torch.nn.Module or a dict name -> tensor holding its parameters; got "
                        f"{type(holder).__name__}")
    for name, p in params.items():
        if not torch.is_tensor(p) or p.dtype != torch.float64:
            got = p.dtype if torch.is_tensor(p) else type(p).__name__
            raise TypeError(f"{what} parameter {name!r} must be a float64 tensor (rws_ref checks in float64: call "
                            f".double() on the module first); got {got}")
    return params


def _gradient(leaves, grads):
    """The gradient dict (NumPy) of the (name, leaf) ``leaves``, zero where the loss does not reach a leaf."""
    return {k: np.zeros(tuple(p.shape)) if g is None else g.detach().numpy().copy() for (k, p), g in zip(leaves, grads)}


class Bridge(DensityBridge):
    """Your PyTorch model and guide densities as rws_ref's protocol pair (``.model``, ``.guide``).

    Parameters
    ----------
    log_joint, log_prob : callables ``(z, x) -> (K, N)`` tensor: log p_θ(z, x) and log q_φ(z | x) for your
        particles z (K, N, *your z shape) and the batch x (N, *x_shape), reading θ and φ from your modules
    theta, phi : the nn.Modules (or dicts name -> tensor) whose parameters are θ and φ (float64)
    x : a batch (N, *x_shape), NumPy or torch
    latent : how your latent is written: :func:`one_hot` (C) for one-hot vectors, else None with
        ``z_shape`` and ``z_domain`` ("real", "binary" or C categories as indices)
    sample_model : optional ``n -> (z, x)``, your model's sampler (dreams, the sampler checks)
    sample_guide : optional ``(x, K) -> z`` (K, N, …), your guide's sampler

    Samplers draw from torch's global generator, seeded from rws_ref's ``rng`` inside
    ``torch.random.fork_rng`` (your global torch state is left as it was).
    """

    RUN = "the batch x (a torch tensor)"

    def __init__(self, log_joint, log_prob, theta, phi, x, latent=None, z_shape=(), z_domain="real",
                 sample_model=None, sample_guide=None):
        for name, fn in (("log_joint", log_joint), ("log_prob", log_prob)):
            if not callable(fn):
                raise TypeError(f"{name} must be a callable (z, x) -> (K, N) tensor; got {type(fn).__name__}")
        for name, fn in (("sample_model", sample_model), ("sample_guide", sample_guide)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a callable or None; got {type(fn).__name__}")
        self._densities = {"model": log_joint, "guide": log_prob}
        self._params = {"model": _parameters(theta, "theta"), "guide": _parameters(phi, "phi")}
        self._encoding = latent if latent is not None else Encoding(z_shape, z_domain)
        self._samplers = (sample_model, sample_guide)
        self._observed = "x"
        x = np.array(x.detach().numpy() if torch.is_tensor(x) else x, dtype=np.float64)
        theta0 = {k: p.detach().numpy().copy() for k, p in self._params["model"].items()}
        phi0 = {k: p.detach().numpy().copy() for k, p in self._params["guide"].items()}
        self._build("PyTorch", (log_joint, log_prob), (theta0, phi0),
                    Layout([("z", self._encoding.z_shape, self._encoding.z_domain)]),
                    (tuple(x.shape[1:]), "real"), False, x, (sample_model is not None, sample_guide is not None))

    def __repr__(self):
        return f"plain_torch Bridge({self.model!r}, {self.guide!r})"

    # -- your densities on rws_ref's particles --------------------------------------------------------
    @staticmethod
    def _tensor(a):
        return a.to(torch.float64) if torch.is_tensor(a) else torch.tensor(np.array(a, dtype=np.float64))

    @contextlib.contextmanager
    def _set(self, who, values):
        """Your parameters of ``who`` set to ``values`` (rws_ref's θ or φ), yielded; put back afterwards."""
        params = self._params[who]
        saved = {k: p.detach().clone() for k, p in params.items()}
        try:
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(self._tensor(values[k]).reshape(p.shape))
            yield params
        finally:
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(saved[k])
                    p.grad = None

    def _density(self, who, z, x):
        lp = self._densities[who](self._encoding.encode(self._tensor(z)), self._tensor(x))
        if tuple(lp.shape) != tuple(np.shape(z)[:2]):
            kn = tuple(np.shape(z)[:2])
            raise ValueError(f"your log {'joint' if who == 'model' else 'prob'} returned shape {tuple(lp.shape)} for "
                             f"particles of shape {tuple(np.shape(z))}; rws_ref needs (K, N) = {kn}")
        return lp

    def _values(self, who, params, z, x):
        with torch.no_grad(), self._set(who, params):
            return self._density(who, z, x).detach().numpy().copy()

    def _weighted(self, who, params, z, x, weights):
        if not params:
            return {}
        with self._set(who, params) as leaves:
            total = (self._tensor(weights) * self._density(who, z, x)).sum()
            grads = torch.autograd.grad(total, list(leaves.values()), allow_unused=True)
        return {k: np.zeros(np.shape(params[k])) if g is None else g.numpy().copy() for k, g in zip(leaves, grads)}

    @staticmethod
    @contextlib.contextmanager
    def _seeded(rng):
        with torch.random.fork_rng():
            torch.manual_seed(int(rng.integers(2 ** 62)))
            yield

    def _ours(self, z):
        return self._encoding.numpy(z)

    def _sample_model(self, theta, n, rng):
        with torch.no_grad(), self._set("model", theta), self._seeded(rng):
            z, x = self._samplers[0](n)
        return self._ours(z), np.array(x.detach().numpy(), dtype=np.float64)

    def _sample_guide(self, phi, x, K, rng):
        with torch.no_grad(), self._set("guide", phi), self._seeded(rng):
            return self._ours(self._samplers[1](self._tensor(x), K))

    # -- your loss on rws_ref's particles -----------------------------------------------------------
    def _run(self, run, theta, phi, x, forced, noise, seed=0):
        values = [("rws_ref's particles" if role == "z" else "rws_ref's dreamt x",
                   self._encoding.encode(self._tensor(a)) if role == "z" and not noise else self._tensor(a))
                  for role, arrays in forced.items() for a in arrays]
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.random.fork_rng())
            torch.manual_seed(seed)
            phi_leaves = stack.enter_context(self._set("guide", phi))
            theta_leaves = stack.enter_context(self._set("model", theta)) if theta is not None else {}
            draws = stack.enter_context(Draws(values, noise))
            out = run(self._tensor(x))
            parts = out if isinstance(out, (tuple, list)) else (out,)
            live = [p for p in parts if torch.is_tensor(p) and p.requires_grad]
            if not live:
                raise ValueError("your loss returned no tensor that depends on the parameters: return the loss "
                                 "(or a tuple of losses) before calling backward")
            leaves = list(theta_leaves.items()) + list(phi_leaves.items())
            grads = torch.autograd.grad(sum(p.sum() for p in live), [p for _, p in leaves], allow_unused=True)
        missing = draws.unused()
        if missing:
            raise ValueError(f"your code drew nothing of the shape of {missing[0]} "
                             f"{tuple(dict(values)[missing[0]].shape)}; the draws it made through "
                             f"torch.distributions had shapes {draws.drawn or 'none'} (rws_ref forces values into "
                             f"sample/rsample of a torch.distributions distribution of exactly that shape: pass "
                             f"check_loss the K your loss draws)")
        cut = len(theta_leaves)
        value = float(parts[0].detach()) if len(parts) == 1 and parts[0].numel() == 1 else None
        g_theta = None if theta is None else _gradient(leaves[:cut], grads[:cut])
        return value, g_theta, _gradient(leaves[cut:], grads[cut:])
