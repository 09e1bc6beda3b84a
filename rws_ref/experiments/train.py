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

The parts live by concern: the optimizers in :mod:`rws_ref.optim`, checkpoints
(written atomically, resumed bit-identically) in :mod:`rws_ref.checkpoints`, the
learning curves in :mod:`rws_ref.plots`; this module holds the configuration
and the loop, and re-exports the names it always had.
"""
import dataclasses
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import family, protocol, registry
from .._checks import DEFAULT_TIMEOUT, check_count, check_draws, check_fraction, check_positive, check_rng, deadline
from .._io import check_output_path, remove_stale_temporaries
from .._trees import flatten
from ..estimators import (
    NonFiniteLogWeights,
    densities,
    elbo_is,
    log_weights,
    sleep_phi,
    wake_gradients,
    wake_phi,
    wake_theta,
)
from ..numerics import softmax
from .checkpoints import CHECKPOINT_VERSION, config_json, load_checkpoint, provenance, save_checkpoint  # noqa: F401
from .loop import Interrupts, progress_bar
from .optim import SGD, Adam
from .plots import plot_history  # noqa: F401

__all__ = ["SGD", "Adam", "TrainConfig", "TrainResult", "train", "load_checkpoint", "plot_history",
           "posterior_error", "METHODS", "PHI_SIGN"]

#: method -> sign of its φ-gradient as an ascent direction (+1: ascent of the bound, −1: descent of KL),
#: read from the estimator registry (each method is the estimator whose ``method`` it is)
PHI_SIGN = {e.method: (+1 if e.direction == registry.ASCENT else -1)
            for e in registry.ESTIMATORS.values() if e.method is not None}
METHODS = tuple(PHI_SIGN)


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
    dreams: Optional[int] = None     # sleep-φ and insomnia: dreams per iteration (None: batch_size · K)
    data_seed: Optional[int] = None  # None: minibatches from the run's generator; an integer: epochs of
    #                                  permutations drawn from it alone, the same data stream for every method
    freeze: tuple = ()               # θ keys held fixed
    tie: tuple = ()                  # θ keys whose entries share one value (PPCA: log_sigma)
    early_stop: bool = True          # False: run to iters

    def validate(self):
        """Check every field; raises ValueError or TypeError naming the field.  Returns self."""
        if not isinstance(self.method, str) or self.method not in PHI_SIGN:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {self.optimizer!r}")
        for name in ("K", "iters", "batch_size", "window", "eval_every"):
            check_count(getattr(self, name), name)
        check_count(self.grad_replicates, "grad_replicates", minimum=0)
        check_count(self.seed, "seed", minimum=0)
        for name in ("dreams", "data_seed"):
            if getattr(self, name) is not None:
                check_count(getattr(self, name), name, minimum=1 if name == "dreams" else 0)
        if isinstance(self.lr_milestones, (str, bytes)) or not all(
                isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m >= 1 for m in self.lr_milestones):
            raise TypeError(f"lr_milestones must be a tuple of iterations >= 1; got {self.lr_milestones!r}")
        self.lr_milestones = tuple(sorted(int(m) for m in self.lr_milestones))
        check_positive(self.lr_factor, "lr_factor")
        if not isinstance(self.early_stop, bool):
            raise TypeError(f"early_stop must be True or False; got {self.early_stop!r}")
        if self.method == "vimco" and self.K < 2:
            raise ValueError(f"K must be >= 2 for VIMCO; got {self.K}")
        check_positive(self.lr_theta, "lr_theta")
        check_positive(self.lr_phi, "lr_phi")
        check_fraction(self.iota, "iota")
        check_fraction(self.delta, "delta")
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


@dataclass
class _Run:
    """The parts of a training run that stay fixed while θ and φ move (the generator moves with them)."""
    cfg: TrainConfig
    model: Any
    guide: Any
    eval_x: np.ndarray
    true_theta: Optional[dict]
    defensive: Any
    gen: np.random.Generator
    opt_theta: Any
    opt_phi: Any
    provenance: dict
    checkpoint: Optional[str]
    metrics: Any = None

    def _replace_gen(self, gen):
        return dataclasses.replace(self, gen=gen)


# -- one step ------------------------------------------------------------------------------


def _phi_gradient(run, theta, phi, x, z, trusted=False):
    """The method's φ-gradient at (θ, φ) on the batch x with particles z (some methods draw more).
    ``trusted``: θ and φ come from the run's own optimizer and the model's sampler has been
    validated on the first iteration, so sleep-φ's dreams and φ are used as they come."""
    cfg, model, guide, rng = run.cfg, run.model, run.guide, run.gen
    if cfg.method == "wake":
        return wake_phi(model, guide, theta, phi, x, z)
    if cfg.method in ("sleep", "insomnia"):
        m = x.shape[0] * cfg.K if cfg.dreams is None else cfg.dreams
        if trusted and cfg.method == "sleep":          # (1/M) Σ_m −∇_φ log q(z_m | x_m), on the dreams as drawn
            dream_z, dream_x = model.sample(theta, m, rng)
            pullback = protocol.guide_forward(guide, phi, np.asarray(dream_z)[None], np.asarray(dream_x))[1]
            return pullback(np.full((1, m), -1.0 / m))
        dream_z, dream_x = protocol.sample_model(model, theta, m, rng)
        if cfg.method == "sleep":
            return sleep_phi(guide, phi, dream_z, dream_x)
        return family.insomnia(model, guide, theta, phi, x, z, dream_z, dream_x, cfg.iota)
    if cfg.method == "defensive":
        mix = family.DefensiveGuide(guide, cfg.delta, run.defensive, model)
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


def _evaluate(run, theta, phi, iteration):
    """One row of metrics, each from a capability of the protocol the model declares."""
    cfg, model, guide, eval_x = run.cfg, run.model, run.guide, run.eval_x
    rng = np.random.default_rng([cfg.seed, iteration])
    z = guide.sample(phi, eval_x, cfg.K, rng)
    row = {"iteration": iteration,
           "elbo_is": float(np.mean(elbo_is(log_weights(model, guide, theta, phi, eval_x, z))))}
    if callable(getattr(model, "log_marginal", None)):
        row["log_p"] = float(np.mean(model.log_marginal(theta, eval_x)))
    if run.true_theta is not None and callable(getattr(model, "summary", None)):
        mine, truth = model.summary(theta), model.summary(run.true_theta)
        row.update({f"{key}_error": float(np.linalg.norm(np.asarray(mine[key]) - np.asarray(truth[key])))
                    for key in mine})
    states = protocol.support(model)
    if states is not None:
        row["posterior_error"] = posterior_error(model, guide, theta, phi, eval_x, states)
        if run.true_theta is not None:           # against the true model's posterior, as Le et al. (2019)
            row["true_posterior_error"] = posterior_error(model, guide, run.true_theta, phi, eval_x, states)
    if cfg.grad_replicates >= 2:
        g_th, g_ph = [], []
        for _ in range(cfg.grad_replicates):
            zr = guide.sample(phi, eval_x, cfg.K, rng)
            g_th.append(flatten(wake_theta(model, guide, theta, phi, eval_x, zr)))
            g_ph.append(flatten(_phi_gradient(run._replace_gen(rng), theta, phi, eval_x, zr)))
        for name, draws in (("grad_std_theta", g_th), ("grad_std_phi", g_ph)):
            if np.size(draws[0]):                    # a model (or guide) without parameters has no gradient
                row[name] = float(np.sqrt(np.mean(np.var(draws, axis=0, ddof=1))))
    if run.metrics is not None:
        row.update(_more_metrics(run.metrics(theta, phi, eval_x), row))
    return row


def _more_metrics(more, row):
    """The user's extra evaluation columns, checked: a dict of new names to finite real numbers."""
    if not isinstance(more, dict):
        raise TypeError(f"metrics must return a dict of name -> number; got {type(more).__name__}")
    for name, value in more.items():
        if name in row:
            raise ValueError(f"metrics returned {name!r}, a column rws_ref already reports; choose another name")
        if isinstance(value, (bool, str)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"metrics returned {name!r} = {value!r}; expected a finite real number")
    return {str(name): float(value) for name, value in more.items()}


def posterior_error(model, guide, theta, phi, x, states=None):
    """Mean over x_n of ‖q_φ(·|x_n) − p_θ(·|x_n)‖₂ over the model's finite support, both tables exact."""
    states = protocol.support(model) if states is None else states
    all_states = np.repeat(states[:, None], x.shape[0], axis=1)
    log_p = protocol.model_forward(model, theta, all_states, x)[0]
    log_q = protocol.guide_forward(guide, phi, all_states, x)[0]
    for table, who in ((log_p, f"{model!r}.log_joint"), (log_q, f"{guide!r}.log_prob")):
        if np.isnan(table).any() or (table == np.inf).any():
            s, n = (int(i) for i in np.argwhere(np.isnan(table) | (table == np.inf))[0])
            raise ValueError(f"{who} is {table[s, n]} at the support state {states[s].tolist()} for datapoint {n}; "
                             f"the posterior error is undefined")
    return float(np.mean(np.linalg.norm(np.exp(log_q) - softmax(log_p, axis=0), axis=0)))


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
          overwrite=False, sample_data=None, timeout=DEFAULT_TIMEOUT, metrics=None):
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
    timeout : seconds (default 60; None: no limit) one iteration, and one evaluation, may take — the model's
        and guide's code runs inside them (TimeoutError naming the iteration)
    metrics : callable (theta, phi, eval_x) -> dict of name -> number, optional: more columns of every
        evaluation row (an experiment's own exact measure, e.g. the scene's count accuracy); each value must be
        a finite real number and no name may replace one of rws_ref's columns

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
    opt_theta, opt_phi = [(Adam if cfg.optimizer == "adam" else SGD)(lr) for lr in (cfg.lr_theta, cfg.lr_phi)]
    if metrics is not None and not callable(metrics):
        raise TypeError(f"metrics must be a callable (theta, phi, eval_x) -> dict; got {type(metrics).__name__}")
    run = _Run(cfg, model, guide, eval_x, true_theta, defensive,
               np.random.default_rng(cfg.seed) if rng is None else check_rng(rng), opt_theta, opt_phi,
               provenance(model, guide, data), checkpoint, metrics)
    theta, phi, history, iteration = _start(run, theta, phi, resume)
    if not history:
        history.append(_evaluate(run, theta, phi, 0))
    stopped_by = "converged" if _converged(history, cfg) else "max_iters"
    bar = progress_bar(progress, cfg.iters, f"rws-ref train ({cfg.method})", "it", initial=iteration)
    with Interrupts() as interrupts:
        while iteration < cfg.iters and stopped_by != "converged":
            if interrupts.requested:
                stopped_by = "interrupted"
                break
            with deadline(timeout, f"training iteration {iteration + 1} (the model's and guide's code in it)"):
                theta, phi = _iteration(run, theta, phi, _batch(run, data, sample_data, iteration), iteration)
            iteration += 1
            bar.update(1)
            if iteration % cfg.eval_every == 0:
                with deadline(timeout, f"the evaluation at iteration {iteration}"):
                    history.append(_evaluate(run, theta, phi, iteration))
                bar.set_postfix(elbo_is=f"{history[-1]['elbo_is']:.4f}")
                stopped_by = "converged" if _converged(history, cfg) else stopped_by
            if iteration % checkpoint_every == 0 and checkpoint is not None:
                save_checkpoint(checkpoint, run, theta, phi, history, iteration)
        bar.close()
        if checkpoint is not None:
            save_checkpoint(checkpoint, run, theta, phi, history, iteration)
    return TrainResult(theta=theta, phi=phi, history=history, stopped_by=stopped_by, iterations=iteration)


def _batch(run, data, sample_data, iteration):
    """This iteration's data: a minibatch of ``data`` without replacement, or a fresh batch from
    ``sample_data`` (validated: it is the user's callable), both from the run's generator.  With
    ``data_seed``, minibatches walk through epochs instead: epoch e is the permutation drawn by
    default_rng([data_seed, e]), cut into ⌊N / batch_size⌋ consecutive batches (the remainder is left
    out of that epoch) — a function of the iteration alone, so runs that share the data seed see the same
    batches in the same order whatever their method draws."""
    n, size = data.shape[0], min(run.cfg.batch_size, data.shape[0])
    if sample_data is None and run.cfg.data_seed is not None:
        epoch, b = divmod(iteration, n // size)
        return data[np.random.default_rng([run.cfg.data_seed, epoch]).permutation(n)[b * size:(b + 1) * size]]
    if sample_data is None:
        return data[run.gen.choice(n, size=size, replace=False)]
    return protocol.validate_x(run.model, sample_data(run.gen, run.cfg.batch_size), name="sample_data output")


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
    if sample_data is not None and cfg.data_seed is not None:
        raise ValueError(f"data_seed orders minibatches of data; with sample_data there are none (data_seed = "
                         f"{cfg.data_seed}; leave it None)")
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


def _start(run, theta, phi, resume):
    """(θ, φ, history, iteration) of a fresh run, or restored from the checkpoint ``resume``."""
    cfg, model, guide = run.cfg, run.model, run.guide
    if resume is None:
        theta = protocol.validate_params(theta if theta is not None else model.init_theta(run.gen),
                                         model.theta_shapes, "theta")
        phi = protocol.validate_params(phi if phi is not None else guide.init_phi(run.gen), guide.phi_shapes, "phi")
        for key in cfg.tie:
            theta[key] = np.full_like(theta[key], np.mean(theta[key]))
        return theta, phi, [], 0
    state = load_checkpoint(resume)
    saved = {k: v for k, v in state["config"].items() if k != "iters"}
    mine = {k: v for k, v in config_json(cfg).items() if k != "iters"}
    for what, old, new in (("configuration", saved, mine), ("provenance", state["provenance"], run.provenance)):
        for field_name in list(new) + [k for k in old if k not in new]:
            if old.get(field_name) != new.get(field_name):
                raise ValueError(f"resume: checkpoint {resume} has another {what}: {field_name} = "
                                 f"{old.get(field_name)!r} there, {new.get(field_name)!r} in this run")
    theta = protocol.validate_params(state["theta"], model.theta_shapes, "checkpoint theta")
    phi = protocol.validate_params(state["phi"], guide.phi_shapes, "checkpoint phi")
    try:
        run.gen.bit_generator.state = state["rng"]
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"resume: checkpoint {resume} holds an unusable generator state ({err})") from None
    run.opt_theta.load(state["opt_theta"], state["opt_theta_meta"], model.theta_shapes, "checkpoint optimizer (θ)")
    run.opt_phi.load(state["opt_phi"], state["opt_phi_meta"], guide.phi_shapes, "checkpoint optimizer (φ)")
    if state["iteration"] > cfg.iters:
        raise ValueError(f"resume: checkpoint {resume} is at iteration {state['iteration']}, "
                         f"beyond iters = {cfg.iters}")
    return theta, phi, state["history"], state["iteration"]


def _gradients(run, theta, phi, x, z, iteration):
    """(wake-θ, the method's φ-gradient) of one step on the batch x with particles z: for method "wake" both
    from one forward pass (``wake_gradients``), else wake-θ from the forward pass and the method's estimator."""
    cfg = run.cfg
    try:
        fp = densities(run.model, run.guide, theta, phi, x, z)
    except NonFiniteLogWeights as err:
        if iteration == 0:
            raise
        raise ValueError(f"training diverged at iteration {iteration + 1}: {err}; lower lr_theta "
                         f"(now {cfg.lr_theta}) or lr_phi (now {cfg.lr_phi})") from None
    if cfg.method == "wake":
        _, g_theta, g_phi = wake_gradients(fp)
        return g_theta, g_phi
    g_theta = fp.pull_theta(softmax(fp.log_w, axis=0) / x.shape[0])             # wake-θ: (1/N) Σ_n Σ_k w̄ ∇ log p
    return g_theta, _phi_gradient(run, theta, phi, x, z, trusted=iteration > 0)


def _iteration(run, theta, phi, x, iteration):
    """One step: particles, wake-θ and the method's φ-gradient, the updates.  For method "wake"
    both gradients come from one forward pass (``wake_gradients``); the other methods call
    their estimator on the same particles, which runs the densities again (sleep-φ, insomnia,
    defensive wake-φ and IWAE also draw particles or dreams of their own).

    The particles of the first iteration are validated; later ones come from the same
    sampler on validated data and are trusted.  Log weights or parameters that leave float64
    later are a diverging run; an error the user's code raises is shown as it is."""
    cfg = run.cfg
    if iteration == 0:
        z = protocol.sample_guide(run.guide, phi, x, cfg.K, run.gen)
    else:
        z = run.guide.sample(phi, x, cfg.K, run.gen)
    g_theta, g_phi = _gradients(run, theta, phi, x, z, iteration)
    sign = PHI_SIGN[cfg.method]
    scale = cfg.lr_factor ** sum(iteration >= m for m in cfg.lr_milestones)      # the schedule
    run.opt_theta.lr, run.opt_phi.lr = cfg.lr_theta * scale, cfg.lr_phi * scale
    theta = run.opt_theta.step(theta, _constrain(g_theta, cfg))
    phi = run.opt_phi.step(phi, {k: sign * v for k, v in g_phi.items()})
    for name, params, lr in (("theta", theta, cfg.lr_theta), ("phi", phi, cfg.lr_phi)):
        for key, value in params.items():
            if not protocol.all_finite(value) and not np.all(np.isfinite(value)):
                raise ValueError(f"training diverged: {name}[{key!r}] is no longer finite at iteration "
                                 f"{iteration + 1}; lower lr_{name} (now {lr})")
    return theta, phi
