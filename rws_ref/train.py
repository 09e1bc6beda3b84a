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
and as "max_iters" at the iteration cap; ``early_stop=False`` runs to the cap.

Checkpoints are .npz files without pickles (parameters, optimizer state)
plus one JSON string (iteration, generator state, configuration, history),
written atomically (temporary file, fsync, rename).  Resuming restores all
of it, so an interrupted run continues bit-identically.
"""
import hashlib
import json
import numbers
import os
import signal
import threading
from dataclasses import asdict, dataclass, field

import numpy as np

from . import family, protocol
from ._checks import check_count, check_draws, check_rng
from ._io import atomic_write, check_output_path, remove_stale_temporaries
from ._trees import flatten
from .estimators import (_step, _trusted_passes, elbo_is, log_weights, normalized_weights, sleep_phi,
                         wake_phi, wake_theta)
from .numerics import logsumexp

__all__ = ["SGD", "Adam", "TrainConfig", "TrainResult", "train", "load_checkpoint", "plot_history",
           "METHODS", "PHI_SIGN"]

#: method -> sign of its φ-gradient as an ascent direction (+1: ascent of the bound, −1: descent of KL)
PHI_SIGN = {"wake": -1, "sleep": -1, "insomnia": -1, "defensive": -1,
            "iwae": +1, "reinforce": +1, "vimco": +1}
METHODS = tuple(PHI_SIGN)
CHECKPOINT_VERSION = 2


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

    def load(self, arrays, meta, shapes=None, name="optimizer"):
        """Restore from :meth:`state`'s output (nothing to restore for SGD)."""
        if arrays:
            raise ValueError(f"{name}: SGD keeps no state, but the checkpoint holds {sorted(arrays)}")


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
        m0 = self.m or {k: np.zeros_like(v) for k, v in params.items()}
        v0 = self.v or {k: np.zeros_like(v) for k, v in params.items()}
        t = self.t + 1
        m = {k: self.b1 * m0[k] + (1 - self.b1) * direction[k] for k in params}
        v = {k: self.b2 * v0[k] + (1 - self.b2) * direction[k] ** 2 for k in params}
        out = {k: params[k] + self.lr * (m[k] / (1 - self.b1 ** t)) / (np.sqrt(v[k] / (1 - self.b2 ** t)) + self.eps)
               for k in params}
        self.m, self.v, self.t = m, v, t
        return out

    def state(self):
        """(arrays, json-able metadata) to checkpoint: the moments m, v and the step count t."""
        arrays = {}
        if self.m is not None:
            arrays.update({f"m/{k}": v for k, v in self.m.items()})
            arrays.update({f"v/{k}": v for k, v in self.v.items()})
        return arrays, {"t": self.t}

    def load(self, arrays, meta, shapes=None, name="optimizer"):
        """Restore the moments and step count from :meth:`state`'s output, checked against
        the parameters' ``shapes`` (keys, shapes, finite; v ≥ 0) when given."""
        t = meta.get("t") if isinstance(meta, dict) else None
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"{name}: step count t must be an integer >= 0; got {t!r}")
        m = {k[2:]: v for k, v in arrays.items() if k.startswith("m/")}
        v = {k[2:]: v for k, v in arrays.items() if k.startswith("v/")}
        if t and shapes is not None:
            m = protocol.validate_params(m, shapes, f"{name} moment m")
            v = protocol.validate_params(v, shapes, f"{name} moment v")
            if any(np.any(a < 0) for a in v.values()):
                raise ValueError(f"{name} moment v must be >= 0 (it is a mean of squares)")
        self.t, self.m, self.v = t, (m if t else None), (v if t else None)


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0 \
            or not np.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


# -- configuration and result --------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything that determines a run (saved in checkpoints).  The command line's defaults are these."""
    method: str = "wake"             # wake, sleep, insomnia, defensive, iwae, reinforce, vimco
    K: int = 10                      # particles per datapoint
    iters: int = 2000                # iteration cap
    batch_size: int = 100            # datapoints per step
    optimizer: str = "adam"          # adam or sgd
    lr_theta: float = 0.03           # learning rate of θ
    lr_phi: float = 0.03             # learning rate of φ
    lr_milestones: tuple = ()        # iterations at which both learning rates are multiplied by lr_factor
    lr_factor: float = 0.1
    iota: float = 0.5                # insomnia: weight of wake-φ
    delta: float = 0.2               # defensive: weight of the defensive component
    seed: int = 0
    tol: float = 1e-3                # convergence rule: nats per datapoint
    window: int = 10                 # convergence rule: evaluations per window
    eval_every: int = 50             # iterations between evaluations
    grad_replicates: int = 2         # replicates for the gradient-spread metrics (0: none)
    freeze: tuple = ()               # θ keys held fixed
    tie: tuple = ()                  # θ keys whose entries share one value (PPCA: log_sigma)
    early_stop: bool = True          # False: run to iters

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
        if isinstance(self.lr_milestones, (str, bytes)) or not all(
                isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m >= 1 for m in self.lr_milestones):
            raise TypeError(f"lr_milestones must be a tuple of iterations >= 1; got {self.lr_milestones!r}")
        self.lr_milestones = tuple(sorted(int(m) for m in self.lr_milestones))
        _positive(self.lr_factor, "lr_factor")
        if not isinstance(self.early_stop, bool):
            raise TypeError(f"early_stop must be True or False; got {self.early_stop!r}")
        if self.method == "vimco" and self.K < 2:
            raise ValueError(f"K must be >= 2 for VIMCO; got {self.K}")
        _positive(self.lr_theta, "lr_theta")
        _positive(self.lr_phi, "lr_phi")
        family._check_fraction(self.iota, "iota")
        family._check_fraction(self.delta, "delta")
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real) or not (
                self.tol >= 0 and np.isfinite(self.tol)):
            raise ValueError(f"tol must be a finite number >= 0; got {self.tol!r}")
        for name in ("freeze", "tie"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(k, str) for k in value):
                raise TypeError(f"{name} must be a tuple of θ key names; got {value!r}")
        self.freeze, self.tie = tuple(self.freeze), tuple(self.tie)
        return self


@dataclass
class TrainResult:
    theta: dict
    phi: dict
    history: list = field(default_factory=list)
    stopped_by: str = "max_iters"          # "converged", "max_iters" or "interrupted" (Ctrl-C)
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
        if true_theta is not None:               # against the true model's posterior, as Le et al. (2019)
            row["true_posterior_error"] = _posterior_error(model, guide, true_theta, phi, eval_x, states)
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
    if not cfg.early_stop:
        return False
    values = [row["elbo_is"] for row in history]
    w = cfg.window
    if len(values) < 2 * w:
        return False
    return np.mean(values[-w:]) - np.mean(values[-2 * w:-w]) < cfg.tol


# -- the loop --------------------------------------------------------------------------------


def train(model, guide, data, config=None, theta=None, phi=None, eval_data=None, true_theta=None,
          defensive=None, checkpoint=None, checkpoint_every=100, resume=None, progress=False, rng=None,
          overwrite=False, sample_data=None):
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
    checkpoint : path, optional; written every ``checkpoint_every`` iterations, at the end and
        on Ctrl-C (atomically: a temporary file renamed into place).  An existing file is
        refused unless it is the ``resume`` file or ``overwrite`` is True.
    resume : path, optional; a checkpoint to continue from.  Its configuration (except
        ``iters``, which may extend the run) and its provenance — the model's and guide's
        types and declared shapes, the data's shape and SHA-256 — must match this run's;
        a mismatch is refused, naming the field.
    progress : bool; show a tqdm progress bar
    sample_data : callable (rng, n) -> x, optional; a fresh batch of ``batch_size`` datapoints at every
        iteration (e.g. from the true model) instead of minibatches of ``data``, which then only
        serves the evaluation (when ``eval_data`` is not given) and the provenance
    rng : numpy.random.Generator, optional; replaces the default np.random.default_rng(config.seed)

    Returns
    -------
    TrainResult with the final parameters, the history of evaluation rows,
    ``stopped_by`` ("converged", "max_iters", or "interrupted" after Ctrl-C, which
    stops at the end of the current iteration) and the number of iterations run.
    The data are validated once; inside the loop the step trusts what its own
    sampler and optimizer produce, and stops with a clear error if θ or φ stop
    being finite (a diverging run).
    """
    cfg, data, eval_x, true_theta, checkpoint, checkpoint_every = _checked(
        model, guide, data, config, eval_data, true_theta, checkpoint, checkpoint_every, resume, overwrite,
        sample_data)
    gen = np.random.default_rng(cfg.seed) if rng is None else check_rng(rng)
    opt_theta, opt_phi = [(Adam if cfg.optimizer == "adam" else SGD)(lr) for lr in (cfg.lr_theta, cfg.lr_phi)]
    provenance = _provenance(model, guide, data)
    theta, phi, history, iteration = _start(cfg, model, guide, theta, phi, gen, opt_theta, opt_phi, resume,
                                            provenance)
    evaluate = lambda th, ph, it: _evaluate(cfg, model, guide, th, ph, eval_x, it, true_theta, defensive)  # noqa
    save = lambda th, ph, it: checkpoint is not None and _save(  # noqa: E731
        checkpoint, cfg, th, ph, gen, opt_theta, opt_phi, history, it, provenance)
    if not history:
        history.append(evaluate(theta, phi, 0))
    stopped_by = "converged" if _converged(history, cfg) else "max_iters"
    bar = _progress(progress, cfg, iteration)
    batch = min(cfg.batch_size, data.shape[0])
    with _Interrupts() as interrupts:
        while iteration < cfg.iters and stopped_by != "converged":
            if interrupts.requested:
                stopped_by = "interrupted"
                break
            x = (data[gen.choice(data.shape[0], size=batch, replace=False)] if sample_data is None
                 else protocol.validate_x(model, sample_data(gen, cfg.batch_size), name="sample_data output"))
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


def _checked(model, guide, data, config, eval_data, true_theta, checkpoint, checkpoint_every, resume, overwrite,
             sample_data):
    """Every argument of :func:`train`, before any work: (cfg, data, eval_x, true θ, checkpoint path,
    checkpoint_every)."""
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig (rws_ref.train.TrainConfig(**fields)); "
                        f"got {type(config).__name__}")
    cfg = (config or TrainConfig()).validate()
    checkpoint_every = check_count(checkpoint_every, "checkpoint_every")
    if sample_data is not None and not callable(sample_data):
        raise TypeError(f"sample_data must be a callable (rng, n) -> x; got {type(sample_data).__name__}")
    protocol.check_pair(model, guide)
    for name in ("freeze", "tie"):
        unknown = sorted(set(getattr(cfg, name)) - set(model.theta_shapes))
        if unknown:
            raise ValueError(f"{name} names keys θ does not have: {unknown}; θ keys: {sorted(model.theta_shapes)}")
    if checkpoint is not None:
        same = resume is not None and os.path.abspath(os.fspath(resume)) == os.path.abspath(os.fspath(checkpoint))
        checkpoint = check_output_path(checkpoint, "checkpoint", overwrite=overwrite or same)
        remove_stale_temporaries(checkpoint)
    data = protocol.validate_x(model, data, name="data")
    eval_x = data if eval_data is None else protocol.validate_x(model, eval_data, name="eval_data")
    size = int(np.prod(model.z_shape, dtype=int)) + int(np.prod(model.x_shape, dtype=int)) + 4
    check_draws(cfg.K * max(min(cfg.batch_size, data.shape[0]), eval_x.shape[0]), (size,),
                f"K = {cfg.K} particles per datapoint", copies=8)
    if true_theta is not None:
        true_theta = protocol.validate_params(true_theta, model.theta_shapes, "true_theta")
    return cfg, data, eval_x, true_theta, checkpoint, checkpoint_every


class _Interrupts:
    """Ctrl-C during training asks the loop to stop at the end of the current iteration, so
    the last checkpoint and the history are those of a whole iteration; a second Ctrl-C
    interrupts at once.  Only in the main thread (signals go there); elsewhere a no-op."""

    def __init__(self):
        self.requested, self._previous = False, None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _provenance(model, guide, data):
    """What determines the data and the parameter layout of a run, recorded in its checkpoints."""
    kind = lambda obj: f"{type(obj).__module__}.{type(obj).__qualname__}"    # noqa: E731
    return {"model": kind(model), "theta_shapes": {k: list(v) for k, v in model.theta_shapes.items()},
            "guide": kind(guide), "phi_shapes": {k: list(v) for k, v in guide.phi_shapes.items()},
            "data_shape": list(data.shape),
            "data_sha256": hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()}


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


def _start(cfg, model, guide, theta, phi, gen, opt_theta, opt_phi, resume, provenance):
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
    mine = {k: v for k, v in _config_json(cfg).items() if k != "iters"}
    for what, old, new in (("configuration", saved, mine), ("provenance", state["provenance"], provenance)):
        for field_name in list(new) + [k for k in old if k not in new]:
            if old.get(field_name) != new.get(field_name):
                raise ValueError(f"resume: checkpoint {resume} has another {what}: {field_name} = "
                                 f"{old.get(field_name)!r} there, {new.get(field_name)!r} in this run")
    theta = protocol.validate_params(state["theta"], model.theta_shapes, "checkpoint theta")
    phi = protocol.validate_params(state["phi"], guide.phi_shapes, "checkpoint phi")
    try:
        gen.bit_generator.state = state["rng"]
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"resume: checkpoint {resume} holds an unusable generator state ({err})") from None
    opt_theta.load(state["opt_theta"], state["opt_theta_meta"], model.theta_shapes, "checkpoint optimizer (θ)")
    opt_phi.load(state["opt_phi"], state["opt_phi_meta"], guide.phi_shapes, "checkpoint optimizer (φ)")
    if state["iteration"] > cfg.iters:
        raise ValueError(f"resume: checkpoint {resume} is at iteration {state['iteration']}, beyond iters = {cfg.iters}")
    return theta, phi, state["history"], state["iteration"]


def _iteration(cfg, model, guide, theta, phi, x, gen, defensive, opt_theta, opt_phi, iteration):
    """One step: particles, wake-θ and the method's φ-gradient from one forward pass, the updates.

    The particles of the first iteration are validated; later ones come from the same
    sampler on validated data and are trusted."""
    z = guide.sample(phi, x, cfg.K, gen)
    if iteration == 0:
        z = protocol.validate_z(model, z, x.shape[0], name="guide.sample output")
    try:
        log_w, pull_theta, pull_phi = _trusted_passes(model, guide, theta, phi, x, z)
    except ValueError as err:
        if iteration == 0:
            raise
        raise ValueError(f"training diverged at iteration {iteration + 1}: {err}; lower lr_theta "
                         f"(now {cfg.lr_theta}) or lr_phi (now {cfg.lr_phi})") from None
    if cfg.method == "wake":
        _, g_theta, g_phi = _step(log_w, pull_theta, pull_phi)
    else:
        g_theta = pull_theta(normalized_weights(log_w) / x.shape[0])
        g_phi = _phi_gradient(cfg, model, guide, theta, phi, x, z, gen, defensive)
    sign = PHI_SIGN[cfg.method]
    scale = cfg.lr_factor ** sum(iteration >= m for m in cfg.lr_milestones)      # the schedule
    opt_theta.lr, opt_phi.lr = cfg.lr_theta * scale, cfg.lr_phi * scale
    theta = opt_theta.step(theta, _constrain(g_theta, cfg))
    phi = opt_phi.step(phi, {k: sign * v for k, v in g_phi.items()})
    for name, params, lr in (("theta", theta, cfg.lr_theta), ("phi", phi, cfg.lr_phi)):
        for key, value in params.items():
            if not protocol._all_finite(value) and not np.all(np.isfinite(value)):
                raise ValueError(f"training diverged: {name}[{key!r}] is no longer finite at iteration "
                                 f"{iteration + 1}; lower lr_{name} (now {lr})")
    return theta, phi


# -- checkpoints -------------------------------------------------------------------------------


def _config_json(cfg):
    d = asdict(cfg)
    d["freeze"], d["tie"], d["lr_milestones"] = list(d["freeze"]), list(d["tie"]), list(d["lr_milestones"])
    return json.loads(json.dumps(d))


def _save(path, cfg, theta, phi, gen, opt_theta, opt_phi, history, iteration, provenance):
    arrays = {f"theta/{k}": v for k, v in theta.items()}
    arrays.update({f"phi/{k}": v for k, v in phi.items()})
    th_arrays, th_meta = opt_theta.state()
    ph_arrays, ph_meta = opt_phi.state()
    arrays.update({f"opt_theta/{k}": v for k, v in th_arrays.items()})
    arrays.update({f"opt_phi/{k}": v for k, v in ph_arrays.items()})
    meta = {"version": CHECKPOINT_VERSION, "iteration": iteration, "config": _config_json(cfg),
            "provenance": provenance, "rng": gen.bit_generator.state, "opt_theta": th_meta,
            "opt_phi": ph_meta, "history": history}
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda handle: np.savez(handle, **arrays), binary=True)


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
        if not isinstance(meta, dict) or meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"version {meta.get('version') if isinstance(meta, dict) else meta!r}, "
                             f"expected {CHECKPOINT_VERSION}")
        _check_meta(meta)
        group = lambda prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        return {"theta": group("theta/"), "phi": group("phi/"), "rng": meta["rng"],
                "opt_theta": group("opt_theta/"), "opt_theta_meta": meta["opt_theta"],
                "opt_phi": group("opt_phi/"), "opt_phi_meta": meta["opt_phi"],
                "history": meta["history"], "iteration": meta["iteration"], "config": meta["config"],
                "provenance": meta["provenance"]}
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"checkpoint {path} is not an rws-ref checkpoint ({err})") from None


def _check_meta(meta):
    """The metadata of a checkpoint, field by field (a tampered or truncated file is refused)."""
    it = meta["iteration"]
    if isinstance(it, bool) or not isinstance(it, int) or it < 0:
        raise ValueError(f"iteration must be an integer >= 0; got {it!r}")
    for name in ("config", "provenance", "rng", "opt_theta", "opt_phi"):
        if not isinstance(meta[name], dict):
            raise ValueError(f"{name} must be a JSON object; got {type(meta[name]).__name__}")
    history = meta["history"]
    if not isinstance(history, list) or not all(
            isinstance(row, dict) and isinstance(row.get("iteration"), int) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in row.values()) for row in history):
        raise ValueError("history must be a list of rows of numbers, each with an integer iteration")
    if any(row["iteration"] > it for row in history):
        raise ValueError(f"history has rows after the checkpoint's iteration {it}")


_LABELS = {"elbo_is": "ELBO_IS (K particles)", "log_p": "log p_θ(x)", "pi_error": "‖π − π_true‖",
           "posterior_error": "‖q − p_θ(z|x)‖", "true_posterior_error": "‖q − p_true(z|x)‖",
           "grad_std_theta": "std of wake-θ", "grad_std_phi": "std of the φ-gradient"}


def plot_history(path, histories, title="", reference=None):
    """Learning curves a reader can learn from, written atomically to ``path`` (PNG).

    Parameters
    ----------
    histories : dict label -> history (the rows of :class:`TrainResult`); several runs share the axes
    reference : dict label -> value, optional horizontal lines on the bound panel (e.g. the
        closed-form maximum likelihood)

    Panels: the bound and log p_θ(x) on the same axes (the gap between them is the bound's
    looseness), each error on a log scale, and the gradients' spread on a log scale; iteration 0
    is left out of log-scale panels.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = {k for h in histories.values() for row in h for k in row}
    errors = [k for k in ("pi_error", "posterior_error", "true_posterior_error") if k in keys]
    errors += sorted(k for k in keys if k.endswith("_error") and k not in errors)
    spreads = [k for k in ("grad_std_theta", "grad_std_phi") if k in keys]
    panels = [("bound (nats per datapoint)", [k for k in ("elbo_is", "log_p") if k in keys], False)]
    panels += [("error", errors, True)] if errors else []
    panels += [("gradient spread", spreads, True)] if spreads else []
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    for ax, (ylabel, panel_keys, log) in zip(axes[0], panels):
        for label, history in histories.items():
            rows = [r for r in history if not log or r["iteration"] > 0]
            its = [r["iteration"] for r in rows]
            for key in panel_keys:
                ax.plot(its, [r.get(key, np.nan) for r in rows], lw=1.3,
                        label=f"{_LABELS.get(key, key)}" + (f" — {label}" if len(histories) > 1 else ""))
        if log:
            ax.set_yscale("log")
        else:                                   # the start is often far below: scale to the run after it
            later = [r[k] for h in histories.values() for r in h[1:] for k in panel_keys if k in r]
            later += list((reference or {}).values())
            if later:
                lo, hi = min(later), max(later)
                pad = 0.1 * (hi - lo) or 0.1
                ax.set_ylim(lo - pad, hi + pad)
        if reference and not log and panel_keys:
            for name, value in reference.items():
                ax.axhline(value, color="k", ls="--", lw=0.8, label=name)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.suptitle(title + (f" ({next(iter(histories))})" if len(histories) == 1 else ""), fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110), binary=True)
    plt.close(fig)
