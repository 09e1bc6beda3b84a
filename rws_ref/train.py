"""The full algorithm: alternate a wake-θ step with a φ step until convergence.

One iteration draws a minibatch of data, takes a wake-θ step on θ (ascent
of the bound), then a φ step by the chosen method:

    wake       wake-φ                                   descent of KL(p ‖ q)
    sleep      sleep-φ on dreams (z, x) ~ p_θ            descent of E_{p_θ(x)} KL
    insomnia   ι·wake-φ + (1 − ι)·sleep-φ               descent
    defensive  wake-φ with particles from (1−δ)q + δr   descent
    iwae       reparameterized IWAE φ-gradient          ascent of ELBO_IS
    reinforce  score-function ∇_φ ELBO_IS               ascent of ELBO_IS
    vimco      VIMCO ∇_φ ELBO_IS                         ascent of ELBO_IS

Convergence rule (documented, checked every ``eval_every`` iterations):
the evaluation metric is the mean ELBO_IS on the evaluation data with K
particles from a generator seeded by (seed, iteration), so it does not
disturb the training stream.  Let s_t be the mean of the last ``window``
evaluations.  Training stops as "converged" once at least 2·window
evaluations exist and s_t − s_{t−window} < ``tol`` (nats per datapoint),
and as "max_iters" at the iteration cap.

Checkpoints are .npz files without pickles (parameters, optimizer state)
plus one JSON string (iteration, generator state, configuration, history),
written atomically (temporary file, fsync, rename).  Resuming restores all
of it, so an interrupted run continues bit-identically.
"""
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field

import numpy as np

from . import family, protocol
from ._checks import check_count, check_rng
from ._trees import flatten
from .estimators import (_step, _trusted_passes, elbo_is, log_weights, normalized_weights, sleep_phi,
                         wake_phi, wake_theta)
from .numerics import logsumexp

__all__ = ["SGD", "Adam", "TrainConfig", "TrainResult", "train", "load_checkpoint",
           "METHODS", "PHI_SIGN"]

#: method -> sign of its φ-gradient as an ascent direction (+1: ascent of the bound, −1: descent of KL)
PHI_SIGN = {"wake": -1, "sleep": -1, "insomnia": -1, "defensive": -1,
            "iwae": +1, "reinforce": +1, "vimco": +1}
METHODS = tuple(PHI_SIGN)
CHECKPOINT_VERSION = 1


# -- optimizers on dict parameters -------------------------------------------------------


class SGD:
    """params ← params + lr · direction (pass an ascent direction)."""

    def __init__(self, lr):
        self.lr = _positive(lr, "lr")

    def step(self, params, direction):
        """One step along ``direction`` (an ascent direction); returns new params."""
        return {k: params[k] + self.lr * direction[k] for k in params}

    def state(self):
        """(arrays, json-able metadata) to checkpoint: SGD has none."""
        return {}, {}

    def load(self, arrays, meta):
        """Restore from :meth:`state`'s output (nothing to restore for SGD)."""


class Adam:
    """Adam (Kingma & Ba 2015) on dicts, ascending the given direction.

    autograd.misc.optimizers.adam keeps its moments inside a closure over a
    flattened vector; this class keeps them as dicts so checkpoints can hold them.
    """

    def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.lr = _positive(lr, "lr")
        self.b1, self.b2, self.eps = b1, b2, eps
        self.m, self.v, self.t = None, None, 0

    def step(self, params, direction):
        """One Adam step ascending ``direction``; returns new params."""
        if self.m is None:
            self.m = {k: np.zeros_like(v) for k, v in params.items()}
            self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t += 1
        out = {}
        for k in params:
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * direction[k]
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * direction[k] ** 2
            m_hat = self.m[k] / (1 - self.b1 ** self.t)
            v_hat = self.v[k] / (1 - self.b2 ** self.t)
            out[k] = params[k] + self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        return out

    def state(self):
        """(arrays, json-able metadata) to checkpoint: the moments m, v and the step count t."""
        arrays = {}
        if self.m is not None:
            arrays.update({f"m/{k}": v for k, v in self.m.items()})
            arrays.update({f"v/{k}": v for k, v in self.v.items()})
        return arrays, {"t": self.t}

    def load(self, arrays, meta):
        """Restore the moments and step count from :meth:`state`'s output."""
        self.t = int(meta["t"])
        if self.t:
            self.m = {k[2:]: v for k, v in arrays.items() if k.startswith("m/")}
            self.v = {k[2:]: v for k, v in arrays.items() if k.startswith("v/")}


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0 \
            or not np.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


# -- configuration and result --------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything that determines a run (saved in checkpoints)."""
    method: str = "wake"
    K: int = 10
    iters: int = 1000
    batch_size: int = 32
    optimizer: str = "adam"
    lr_theta: float = 1e-2
    lr_phi: float = 1e-2
    iota: float = 0.5
    delta: float = 0.2
    seed: int = 0
    tol: float = 1e-3
    window: int = 10
    eval_every: int = 10
    grad_replicates: int = 4
    freeze: tuple = ()
    tie: tuple = ()

    def validate(self):
        """Check every field; raises ValueError or TypeError naming the field.  Returns self."""
        if self.method not in PHI_SIGN:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {self.optimizer!r}")
        for name in ("K", "iters", "batch_size", "window", "eval_every"):
            check_count(getattr(self, name), name)
        check_count(self.grad_replicates, "grad_replicates", minimum=0)
        check_count(self.seed, "seed", minimum=0)
        if self.method == "vimco" and self.K < 2:
            raise ValueError(f"K must be >= 2 for VIMCO; got {self.K}")
        _positive(self.lr_theta, "lr_theta")
        _positive(self.lr_phi, "lr_phi")
        family._check_fraction(self.iota, "iota")
        family._check_fraction(self.delta, "delta")
        if not (isinstance(self.tol, (int, float)) and self.tol >= 0 and np.isfinite(self.tol)):
            raise ValueError(f"tol must be a finite number >= 0; got {self.tol!r}")
        self.freeze, self.tie = tuple(self.freeze), tuple(self.tie)
        return self


@dataclass
class TrainResult:
    theta: dict
    phi: dict
    history: list = field(default_factory=list)
    stopped_by: str = "max_iters"
    iterations: int = 0


# -- one step ------------------------------------------------------------------------------


def _phi_gradient(cfg, model, guide, theta, phi, x, z, rng, defensive):
    if cfg.method == "wake":
        return wake_phi(model, guide, theta, phi, x, z)
    if cfg.method == "sleep":
        dream_z, dream_x = model.sample(theta, x.shape[0] * cfg.K, rng)
        return sleep_phi(guide, phi, dream_z, dream_x)
    if cfg.method == "insomnia":
        dream_z, dream_x = model.sample(theta, x.shape[0] * cfg.K, rng)
        return family.insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, cfg.iota)
    if cfg.method == "defensive":
        mix = family.DefensiveGuide(guide, cfg.delta, defensive)
        return wake_phi(model, mix, theta, phi, x, mix.sample(phi, x, cfg.K, rng))
    if cfg.method == "iwae":
        eps = rng.standard_normal((cfg.K, x.shape[0]) + tuple(guide.z_shape))
        return family.iwae_phi(model, guide, theta, phi, x, eps)
    if cfg.method == "reinforce":
        return family.reinforce_phi(model, guide, theta, phi, x, z)
    return family.vimco_phi(model, guide, theta, phi, x, z)


def _constrain(grad, cfg):
    out = dict(grad)
    for key in cfg.freeze:
        out[key] = np.zeros_like(out[key])
    for key in cfg.tie:
        out[key] = np.full_like(out[key], np.mean(out[key]))
    return out


def _evaluate(cfg, model, guide, theta, phi, eval_x, iteration, true_theta, defensive):
    """One row of metrics, each from a capability of the protocol the model declares."""
    rng = np.random.default_rng([cfg.seed, iteration])
    z = guide.sample(phi, eval_x, cfg.K, rng)
    row = {"iteration": iteration,
           "elbo_is": float(np.mean(elbo_is(log_weights(model, guide, theta, phi, eval_x, z))))}
    if callable(getattr(model, "log_marginal", None)):
        row["log_p"] = float(np.mean(model.log_marginal(theta, eval_x)))
    if true_theta is not None and callable(getattr(model, "summary", None)):
        mine, truth = model.summary(theta), model.summary(true_theta)
        row.update({f"{key}_error": float(np.linalg.norm(np.asarray(mine[key]) - np.asarray(truth[key])))
                    for key in mine})
    states = protocol.support(model)
    if states is not None:
        row["posterior_error"] = _posterior_error(model, guide, theta, phi, eval_x, states)
    if cfg.grad_replicates >= 2:
        g_th, g_ph = [], []
        for _ in range(cfg.grad_replicates):
            zr = guide.sample(phi, eval_x, cfg.K, rng)
            g = wake_theta(model, guide, theta, phi, eval_x, zr)
            g_th.append(flatten(g, g))
            g = _phi_gradient(cfg, model, guide, theta, phi, eval_x, zr, rng, defensive)
            g_ph.append(flatten(g, g))
        row["grad_std_theta"] = float(np.sqrt(np.mean(np.var(g_th, axis=0, ddof=1))))
        row["grad_std_phi"] = float(np.sqrt(np.mean(np.var(g_ph, axis=0, ddof=1))))
    return row


def _posterior_error(model, guide, theta, phi, x, states):
    """Mean over x_n of ‖q_φ(·|x_n) − p_θ(·|x_n)‖₂ over a finite support, both tables exact."""
    all_states = np.repeat(states[:, None], x.shape[0], axis=1)
    log_p = protocol.model_forward(model, theta, all_states, x)[0]
    log_q = protocol.guide_forward(guide, phi, all_states, x)[0]
    return float(np.mean(np.linalg.norm(np.exp(log_q) - np.exp(log_p - logsumexp(log_p, axis=0)), axis=0)))


def _converged(history, cfg):
    values = [row["elbo_is"] for row in history]
    w = cfg.window
    if len(values) < 2 * w:
        return False
    return np.mean(values[-w:]) - np.mean(values[-2 * w:-w]) < cfg.tol


# -- the loop --------------------------------------------------------------------------------


def train(model, guide, data, config=None, theta=None, phi=None, eval_data=None, true_theta=None,
          defensive=None, checkpoint=None, checkpoint_every=100, resume=None, progress=False, rng=None):
    """Run RWS (or a compared method) until convergence or the iteration cap.

    Parameters
    ----------
    model, guide : any model and guide that follow the protocol (docs/protocol.md)
    data : ndarray (N, *x_shape), the training set
    config : TrainConfig (defaults if None)
    theta, phi : initial parameters (default: ``init_theta`` / ``init_phi`` from the run's generator)
    eval_data : ndarray, data for the evaluation metrics (default: ``data``)
    true_theta : dict, optional; with the model's ``summary`` capability, the errors
        ‖summary(θ)[key] − summary(θ_true)[key]‖ are reported as ``{key}_error``
    defensive : the defensive component r for method "defensive" (default uniform)
    checkpoint : path, optional; written every ``checkpoint_every`` iterations and at the end
    resume : path, optional; a checkpoint to continue from (its configuration must match,
        except ``iters``, which may extend the run)
    progress : bool; show a tqdm progress bar
    rng : numpy.random.Generator, optional; replaces the default np.random.default_rng(config.seed)

    Returns
    -------
    TrainResult with the final parameters, the history of evaluation rows,
    ``stopped_by`` ("converged" or "max_iters") and the number of iterations run.
    The data are validated once; inside the loop the step trusts what its own
    sampler and optimizer produce, and stops with a clear error if θ or φ stop
    being finite (a diverging run).
    """
    cfg = (config or TrainConfig()).validate()
    protocol.check_pair(model, guide)
    data = protocol.validate_x(model, data, name="data")
    eval_x = data if eval_data is None else protocol.validate_x(model, eval_data, name="eval_data")
    if true_theta is not None:
        true_theta = protocol.validate_params(true_theta, model.theta_shapes, "true_theta")
    gen = np.random.default_rng(cfg.seed) if rng is None else check_rng(rng)
    opt_theta, opt_phi = [(Adam if cfg.optimizer == "adam" else SGD)(lr) for lr in (cfg.lr_theta, cfg.lr_phi)]
    theta, phi, history, iteration = _start(cfg, model, guide, theta, phi, gen, opt_theta, opt_phi, resume)
    evaluate = lambda th, ph, it: _evaluate(cfg, model, guide, th, ph, eval_x, it, true_theta, defensive)  # noqa
    save = lambda th, ph, it: checkpoint is not None and _save(  # noqa: E731
        checkpoint, cfg, th, ph, gen, opt_theta, opt_phi, history, it)
    if not history:
        history.append(evaluate(theta, phi, 0))
    stopped_by = "converged" if _converged(history, cfg) else "max_iters"
    bar = _progress(progress, cfg, iteration)
    batch = min(cfg.batch_size, data.shape[0])
    while iteration < cfg.iters and stopped_by != "converged":
        x = data[gen.choice(data.shape[0], size=batch, replace=False)]
        theta, phi = _iteration(cfg, model, guide, theta, phi, x, gen, defensive, opt_theta, opt_phi,
                                iteration)
        iteration += 1
        bar.update(1)
        if iteration % cfg.eval_every == 0:
            history.append(evaluate(theta, phi, iteration))
            bar.set_postfix(elbo_is=f"{history[-1]['elbo_is']:.4f}")
            stopped_by = "converged" if _converged(history, cfg) else stopped_by
        if iteration % checkpoint_every == 0:
            save(theta, phi, iteration)
    bar.close()
    save(theta, phi, iteration)
    return TrainResult(theta=theta, phi=phi, history=history, stopped_by=stopped_by, iterations=iteration)


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **values):
        pass

    def close(self):
        pass


def _progress(progress, cfg, start):
    if not progress:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=cfg.iters, initial=start, desc=f"rws-ref train ({cfg.method})", unit="it")


def _start(cfg, model, guide, theta, phi, gen, opt_theta, opt_phi, resume):
    """(θ, φ, history, iteration) of a fresh run, or restored from the checkpoint ``resume``."""
    if resume is None:
        theta = protocol.validate_params(theta if theta is not None else model.init_theta(gen),
                                         model.theta_shapes, "theta")
        phi = protocol.validate_params(phi if phi is not None else guide.init_phi(gen), guide.phi_shapes, "phi")
        for key in cfg.tie:
            theta[key] = np.full_like(theta[key], np.mean(theta[key]))
        return theta, phi, [], 0
    state = load_checkpoint(resume)
    saved = {k: v for k, v in state["config"].items() if k != "iters"}
    if saved != {k: v for k, v in _config_json(cfg).items() if k != "iters"}:
        raise ValueError(f"resume: checkpoint {resume} was written with a different configuration "
                         f"{saved}; this run has {_config_json(cfg)}")
    theta = protocol.validate_params(state["theta"], model.theta_shapes, "checkpoint theta")
    phi = protocol.validate_params(state["phi"], guide.phi_shapes, "checkpoint phi")
    gen.bit_generator.state = state["rng"]
    opt_theta.load(state["opt_theta"], state["opt_theta_meta"])
    opt_phi.load(state["opt_phi"], state["opt_phi_meta"])
    return theta, phi, state["history"], state["iteration"]


def _iteration(cfg, model, guide, theta, phi, x, gen, defensive, opt_theta, opt_phi, iteration):
    """One step: particles, wake-θ and the method's φ-gradient from one forward pass, the updates.

    The particles of the first iteration are validated; later ones come from the same
    sampler on validated data and are trusted."""
    z = guide.sample(phi, x, cfg.K, gen)
    if iteration == 0:
        z = protocol.validate_z(model, z, x.shape[0], name="guide.sample output")
    log_w, pull_theta, pull_phi = _trusted_passes(model, guide, theta, phi, x, z)
    if cfg.method == "wake":
        _, g_theta, g_phi = _step(log_w, pull_theta, pull_phi)
    else:
        g_theta = pull_theta(normalized_weights(log_w) / x.shape[0])
        g_phi = _phi_gradient(cfg, model, guide, theta, phi, x, z, gen, defensive)
    sign = PHI_SIGN[cfg.method]
    theta = opt_theta.step(theta, _constrain(g_theta, cfg))
    phi = opt_phi.step(phi, {k: sign * v for k, v in g_phi.items()})
    for name, params, lr in (("theta", theta, cfg.lr_theta), ("phi", phi, cfg.lr_phi)):
        for key, value in params.items():
            if not np.isfinite(np.add.reduce(value.ravel())) and not np.all(np.isfinite(value)):
                raise ValueError(f"training diverged: {name}[{key!r}] is no longer finite at iteration "
                                 f"{iteration + 1}; lower lr_{name} (now {lr})")
    return theta, phi


# -- checkpoints -------------------------------------------------------------------------------


def _config_json(cfg):
    d = asdict(cfg)
    d["freeze"], d["tie"] = list(d["freeze"]), list(d["tie"])
    return json.loads(json.dumps(d))


def _save(path, cfg, theta, phi, gen, opt_theta, opt_phi, history, iteration):
    arrays = {f"theta/{k}": v for k, v in theta.items()}
    arrays.update({f"phi/{k}": v for k, v in phi.items()})
    th_arrays, th_meta = opt_theta.state()
    ph_arrays, ph_meta = opt_phi.state()
    arrays.update({f"opt_theta/{k}": v for k, v in th_arrays.items()})
    arrays.update({f"opt_phi/{k}": v for k, v in ph_arrays.items()})
    meta = {"version": CHECKPOINT_VERSION, "iteration": iteration, "config": _config_json(cfg),
            "rng": gen.bit_generator.state, "opt_theta": th_meta, "opt_phi": ph_meta, "history": history}
    arrays["meta"] = np.array(json.dumps(meta))
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rws-ref-ckpt-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path):
    """Read a checkpoint written by :func:`train` (no code execution: npz without pickles).

    Returns
    -------
    dict with theta, phi, rng (generator state), opt_theta / opt_theta_meta,
    opt_phi / opt_phi_meta, history, iteration, config.

    Raises
    ------
    ValueError
        for a file that is missing, not an npz, or not an rws-ref checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path} does not exist") from None
    except Exception as err:
        raise ValueError(f"checkpoint {path} is not a readable .npz file ({type(err).__name__}: {err})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"version {meta.get('version')!r}, expected {CHECKPOINT_VERSION}")
        group = lambda prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        return {"theta": group("theta/"), "phi": group("phi/"), "rng": meta["rng"],
                "opt_theta": group("opt_theta/"), "opt_theta_meta": meta["opt_theta"],
                "opt_phi": group("opt_phi/"), "opt_phi_meta": meta["opt_phi"],
                "history": meta["history"], "iteration": int(meta["iteration"]), "config": meta["config"]}
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"checkpoint {path} is not an rws-ref checkpoint ({err})") from None
