"""The ``rws-ref`` command line.

    rws-ref audit [--plot FILE.png]      every estimator against the exact oracle (the main job)
    rws-ref train --model … --method …  the full algorithm, with metrics, plots and checkpoints
    rws-ref vectors --out FILE.json      language-neutral test vectors for other implementations
    rws-ref reproduce le2019-gmm|le2019-scene|bb2015-digits|bb2015-bars --out DIR   a paper's experiment, resumable
    rws-ref exercises list|start|check|solution   exercises graded by the oracle

Errors in the arguments or the files give one readable line on stderr and exit status 2, never a
traceback.  ``audit`` exits 1 if any check fails, ``exercises check`` if the exercise is not yet right.
"""
import argparse
import csv
import importlib
import json
import os
import sys
import time
import traceback

import numpy as np

from . import __version__, protocol
from ._checks import DEFAULT_TIMEOUT, check_memory, in_rws_ref, user_frames
from ._io import atomic_write, check_output_path
from .checking import limits


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class _UserError(Exception):
    """A mistake in the arguments or the user's files: one line on stderr, exit status 2."""


def _argument(convert, accept, expected):
    """An argparse type: ``convert`` the text, then require ``accept(value)``;
    both failures say what was expected and what came."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}; got {value}")
        return value
    return parse


_positive_int = _argument(int, lambda v: v >= 1, "a positive integer")
_nonnegative_int = _argument(int, lambda v: v >= 0, "an integer >= 0")
_fraction = _argument(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
_positive_float = _argument(float, lambda v: v > 0 and np.isfinite(v), "a positive number")


BUILT_IN = ("linear-gaussian", "ppca", "mixture", "belief-net")


def _model_spec(text):
    if text in BUILT_IN or (":" in text and all(text.partition(":")[::2])):
        return text
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(BUILT_IN)} or MODULE:ATTR; got {text!r}")


def load_model_spec(spec):
    """(model, guide, true θ or None) from ``MODULE:ATTR``: ATTR is (model, guide), a dict with
    keys model, guide and optionally true_theta, or a callable of no arguments returning either."""
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise _UserError(f"--model {spec}: cannot import {module_name} ({err})") from None
    if not hasattr(module, attr):
        raise _UserError(f"--model {spec}: module {module_name} has no attribute {attr!r}")
    value = getattr(module, attr)
    value = value() if callable(value) else value
    if isinstance(value, dict) and {"model", "guide"} <= set(value):
        model, guide, truth = value["model"], value["guide"], value.get("true_theta")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        (model, guide), truth = value, None
    else:
        raise _UserError(f"--model {spec}: expected (model, guide) or a dict with keys 'model' and 'guide'; "
                         f"got {type(value).__name__}")
    protocol.check_pair(model, guide)
    return model, guide, truth


def build_parser():
    from .experiments.train import METHODS
    parser = _Parser(
        prog="rws-ref",
        description="Reference implementation of Reweighted Wake-Sleep: "
                    "ELBO_IS, wake-θ, wake-φ and sleep-φ with hand-derived gradients, "
                    "checked against closed forms, exact enumeration and autograd.")
    parser.add_argument("--version", action="version", version=f"rws-ref {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, print the whole traceback instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_audit_parser, lambda s: _train_parser(s, METHODS), _vectors_parser, _reproduce_parser,
                _exercises_parser):
        add(sub)
    return parser


def _exercises_parser(sub):
    ex = sub.add_parser("exercises", help="exercises graded by the oracle: list, start, check, solution",
                        description="Write an estimator yourself; rws_ref's checks grade it (exit 0 when right, "
                                    "1 with a hint when not).")
    what = ex.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    what.add_parser("list", help="the exercises in order, with the course section each practises")
    start = what.add_parser("start", help="write an exercise's template into FILE (never over an existing file)")
    check = what.add_parser("check", help="grade the function NAME in FILE")
    shown = what.add_parser("solution", help="show a solution of NAME (hidden until asked: try the exercise first)")
    for p in (start, check, shown):
        p.add_argument("name", metavar="NAME", help="the exercise (rws-ref exercises list)")
    for p in (start, check):
        p.add_argument("file", metavar="FILE", help="your Python file")


def _reproduce_parser(sub):
    rep = sub.add_parser("reproduce", help="reproduce a paper's experiment (le2019-gmm, -scene, bb2015-digits, -bars)",
                         description="le2019-gmm: Le et al. (2019)'s mixture, WW, WS, δ-WW, REINFORCE, VIMCO at "
                                     "K = 2, 5, 10, 20; le2019-scene: the same with stochastic control flow; "
                                     "bb2015-digits, -bars: Bornschein and Bengio (2015), belief nets. Resumable: a "
                                     "rerun with the same --out skips finished runs and continues unfinished ones.")
    rep.add_argument("experiment", choices=["le2019-gmm", "le2019-scene", "bb2015-digits", "bb2015-bars"],
                     help="bb2015-digits needs pip install 'rws_ref[data]'")
    rep.add_argument("--out", metavar="DIR", required=True, help="folder for the runs, results and figures")
    rep.add_argument("--budget", type=_argument(float, lambda v: 0 < v <= 1, "a number in (0, 1]"), default=0.01,
                     help="fraction of the full run's iterations (le2019-gmm 100,000, le2019-scene 2,000, "
                          "bb2015-digits and -bars 20,000; default 0.01)")
    rep.add_argument("--start", choices=["authors-far", "authors-near", "mirrored"], default=None,
                     help="le2019-gmm: the starting mixture weights (default authors-far, docs/reproduce.md)")
    rep.add_argument("--raw-x", action="store_true", help="le2019-gmm: the guide sees raw x, as the authors' network")
    rep.add_argument("--seeds", type=_positive_int, default=1, help="runs per method and K (default 1)")
    rep.add_argument("--methods", nargs="+", metavar="M", help="only these of the experiment's methods (default all)")
    rep.add_argument("--ks", nargs="+", type=_positive_int, metavar="K", help="only these of its K (default all)")
    rep.add_argument("--jobs", type=_positive_int, default=2,
                     help="local processes running runs in parallel, at most one per pending run (default 2)")
    rep.add_argument("--scheduler", metavar="ADDRESS", default=None,
                     help="run the runs as tasks on this Dask scheduler (e.g. tcp://host:8786) instead of local "
                          "processes; needs pip install 'rws_ref[dask]'")
    rep.add_argument("--fresh", action="store_true",
                     help="start afresh in a folder holding runs of another configuration (removes those run files)")
    rep.add_argument("--max-runs", type=_positive_int, default=2000,
                     help="refuse grids of more runs than this before starting (default %(default)s)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bar")


def _audit_parser(sub):
    audit = sub.add_parser("audit", help="check every estimator against the exact oracle and closed forms",
                           description="Print one table: estimator, model, K, target, exact mean, bias, "
                                       "standard deviation, bias/std and a verdict. Exit status 1 if any "
                                       "check fails.")
    audit.add_argument("--plot", metavar="FILE.png", help="also draw exact bias and std against K")
    audit.add_argument("--model", metavar="MODULE:ATTR", type=_model_spec, default=None,
                       help="audit your own model instead of the built-in ones (it needs a finite support()); "
                            "ATTR gives (model, guide) or {'model': …, 'guide': …} (a callable is called)")
    audit.add_argument("--seed", type=_nonnegative_int, default=0, help="θ, φ and x for --model")
    audit.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                       help="with --model: each call of your model's and guide's methods (default: %(default)g s)")
    audit.add_argument("--overwrite", action="store_true", help="allow replacing an existing --plot file")


def _train_parser(sub, METHODS):
    from .experiments.train import TrainConfig
    d = TrainConfig()                    # one set of defaults for the API and the command line
    tr = sub.add_parser("train", help="run RWS (or a compared method) on a built-in model or your own",
                        description="Train on data drawn from the model's reference parameters (seeded), report "
                                    "metrics, optionally checkpoint and resume. Defaults are those of "
                                    "rws_ref.experiments.train.TrainConfig.")
    arg = tr.add_argument
    arg("--model", type=_model_spec, default="mixture", metavar="MODEL",
        help="linear-gaussian, ppca (linear-Gaussian with mu frozen at 0 and one shared sigma), mixture, "
             "belief-net, or MODULE:ATTR for your own model (ATTR gives (model, guide) or {'model': …, "
             "'guide': …, 'true_theta': …}; a callable is called; MODULE is imported from the current "
             "directory too) (default: %(default)s)")
    arg("--guide", choices=["linear", "mlp"], default=None,
        help="mixture only: SoftmaxLinearGuide or MLPGuide (default mlp)")
    arg("--dz", type=_positive_int, default=2, help="latent dimension of linear-gaussian/ppca (default: %(default)s)")
    arg("--dx", type=_positive_int, default=5, help="data dimension of linear-gaussian/ppca (default: %(default)s)")
    arg("--method", choices=list(METHODS), default=d.method, help="φ update (default: %(default)s)")
    arg("--K", type=_positive_int, default=d.K, help="particles per datapoint (default: %(default)s)")
    arg("--iters", type=_positive_int, default=d.iters, help="iteration cap (default: %(default)s)")
    arg("--seed", type=_nonnegative_int, default=d.seed, help="seed of the data and the run (default: %(default)s)")
    arg("--n-data", type=_positive_int, default=1000, help="training set size (default: %(default)s)")
    arg("--fresh-data", action="store_true",
        help="draw a fresh batch from the true model at every step instead of minibatches of a fixed set")
    arg("--batch-size", type=_positive_int, default=d.batch_size, help="datapoints per step (default: %(default)s)")
    arg("--optimizer", choices=["adam", "sgd"], default=d.optimizer, help="(default: %(default)s)")
    arg("--lr-theta", type=_positive_float, default=d.lr_theta, help="θ learning rate (default: %(default)s)")
    arg("--lr-phi", type=_positive_float, default=d.lr_phi, help="φ learning rate (default: %(default)s)")
    arg("--lr-milestones", type=_milestones, default=d.lr_milestones, metavar="IT[,IT…]",
        help="iterations at which both learning rates are multiplied by --lr-factor (default: none)")
    arg("--lr-factor", type=_positive_float, default=d.lr_factor, help="(default: %(default)s)")
    arg("--iota", type=_fraction, default=d.iota, help="insomnia weight of wake-φ (default: %(default)s)")
    arg("--delta", type=_fraction, default=d.delta, help="defensive mixture weight (default: %(default)s)")
    arg("--tol", type=_argument(float, lambda v: v >= 0 and np.isfinite(v), "a number >= 0"), default=d.tol,
        help="convergence rule: stop when the windowed mean bound gains less than this, in nats per "
             "datapoint (default: %(default)s)")
    arg("--window", type=_positive_int, default=d.window, help="evaluations per window (default: %(default)s)")
    arg("--no-early-stop", action="store_true", help="run to --iters: never stop by the convergence rule")
    arg("--eval-every", type=_positive_int, default=d.eval_every,
        help="iterations between evaluations (default: %(default)s)")
    arg("--grad-replicates", type=_nonnegative_int, default=d.grad_replicates,
        help="replicates for the gradient-spread metrics, 0 for none (default: %(default)s)")
    _train_outputs(arg)


def _train_outputs(arg):
    """The train command's files, progress and limits."""
    arg("--out", metavar="FILE.csv|FILE.json", help="write the metrics")
    arg("--plot", metavar="FILE.png", help="draw the learning curves")
    arg("--save-params", metavar="FILE.npz", help="write the learned θ and φ (keys theta/NAME, phi/NAME)")
    arg("--checkpoint", metavar="FILE.npz", help="write checkpoints here")
    arg("--resume", metavar="FILE.npz", help="continue from this checkpoint")
    arg("--no-progress", action="store_true", help="no progress bar")
    arg("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help="with --model MODULE:ATTR: each call of your model's and guide's methods (default: %(default)g s)")
    arg("--overwrite", action="store_true",
        help="allow replacing existing --out, --plot, --save-params and --checkpoint files (a fresh run never "
             "replaces a checkpoint otherwise; --resume continues the one it names)")


def _milestones(text):
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected iterations separated by commas; got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive iterations; got {text!r}")
    return values


def _vectors_parser(sub):
    vec = sub.add_parser("vectors", help="write language-neutral test vectors (JSON)",
                         description="Write fixed inputs and the outputs a correct RWS implementation "
                                     "must produce, with exact means and variances where the oracle gives "
                                     "them. Same version and seed give byte-identical files; the JSON "
                                     "Schema ships with the package (rws_ref/checking/data/vectors.schema.json).")
    vec.add_argument("--out", metavar="FILE.json", required=True)
    vec.add_argument("--seed", type=_nonnegative_int, default=0)
    vec.add_argument("--overwrite", action="store_true", help="allow replacing an existing --out file")


def _run_audit(args):

    from .checking.audit import audit_model, format_table, plot_bias_std, run_audit
    if args.plot:
        check_output_path(args.plot, "--plot", (".png",), overwrite=args.overwrite)
    if args.model is not None and args.model in BUILT_IN:
        raise _UserError("--model: the built-in models are audited without --model; give MODULE:ATTR")
    if args.model is not None and args.plot:
        raise _UserError("--plot draws the built-in mixture; it cannot be combined with --model")
    if args.model is None:
        rows, seconds = run_audit()
    else:
        model, guide, truth = load_model_spec(args.model)
        start = time.perf_counter()
        rows = audit_model(model, guide, theta=truth, seed=args.seed, timeout=args.timeout, progress=True)
        seconds = time.perf_counter() - start
    print(format_table(rows))
    failed = [r for r in rows if not r.passed]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} checks passed in {seconds:.1f} s")
    if args.plot:
        plot_bias_std(args.plot)
        print(f"plot written to {args.plot}")
    return 1 if failed else 0


def _problem(args):
    from .models import (
        BernoulliGuide,
        DiagonalGaussianGuide,
        GaussianMixture,
        LinearGaussian,
        SigmoidBeliefNet,
        benchmark_guide,
    )
    data_rng = np.random.default_rng([args.seed, 1])
    start = None                                 # θ's start: the model's own init, unless a branch gives one
    check_memory(8 * 2 * args.n_data * 64, f"--n-data {args.n_data}")
    if args.model not in BUILT_IN:
        model, guide, truth = load_model_spec(args.model)
        model, guide = limits.timed(model, args.timeout), limits.timed(guide, args.timeout)
        truth = model.init_theta(data_rng) if truth is None else truth
    elif args.model == "mixture":
        model = GaussianMixture()
        guide = benchmark_guide("linear" if args.guide == "linear" else "mlp")
        truth = model.true_theta()
        start = {"logits": np.zeros(20)}
    elif args.model in ("linear-gaussian", "ppca"):
        model, guide = LinearGaussian(args.dz, args.dx), DiagonalGaussianGuide(args.dz, args.dx)
        truth = model.init_theta(data_rng)
        if args.model == "ppca":             # probabilistic PCA: mu = 0, one shared sigma
            truth["mu"], truth["log_sigma"] = np.zeros(args.dz), np.full(args.dx, np.log(0.5))
            start = {"mu": np.zeros(args.dz), "W": 0.1 * data_rng.standard_normal((args.dx, args.dz)),
                     "b": np.zeros(args.dx), "log_sigma": np.zeros(args.dx)}
    else:
        model, guide = SigmoidBeliefNet(4, 8), BernoulliGuide(4, 8)
        truth = model.init_theta(data_rng)
    size = int(np.prod(model.z_shape, dtype=int)) + int(np.prod(model.x_shape, dtype=int))
    check_memory(8 * 2 * args.n_data * size, f"--n-data {args.n_data}")
    data = model.sample(truth, args.n_data, data_rng)[1]
    held_out = model.sample(truth, 200, data_rng)[1]
    return model, guide, truth, start, data, held_out


def _run_train(args):
    from .experiments.train import TrainConfig, train
    outputs = [(name, path) for name, path in (("--out", args.out), ("--plot", args.plot),
                                               ("--save-params", args.save_params), ("--checkpoint", args.checkpoint))
               if path]
    for i, (name, path) in enumerate(outputs):
        for other, other_path in outputs[i + 1:]:
            if os.path.abspath(path) == os.path.abspath(other_path):
                raise _UserError(f"{name} and {other} name the same file {path}; one would replace the other")
    for path, name, suffixes in ((args.out, "--out", (".csv", ".json")), (args.plot, "--plot", (".png",)),
                                 (args.save_params, "--save-params", (".npz",))):
        if path:
            check_output_path(path, name, suffixes, overwrite=args.overwrite)
    if args.checkpoint:
        same = args.resume and os.path.abspath(args.resume) == os.path.abspath(args.checkpoint)
        check_output_path(args.checkpoint, "--checkpoint", (".npz",), overwrite=args.overwrite or same)
    if args.resume and not os.path.isfile(args.resume):
        raise _UserError(f"{args.resume}: no such checkpoint file")

    if args.guide is not None and args.model != "mixture":
        raise _UserError(f"--guide chooses between the mixture's guides; --model {args.model} has no such choice")
    model, guide, truth, start, data, held_out = _problem(args)
    _check_method(args.method, model, guide)
    ppca = args.model == "ppca"
    cfg = TrainConfig(method=args.method, K=args.K, iters=args.iters, batch_size=args.batch_size,
                      optimizer=args.optimizer, lr_theta=args.lr_theta, lr_phi=args.lr_phi,
                      lr_milestones=args.lr_milestones, lr_factor=args.lr_factor, iota=args.iota,
                      delta=args.delta, seed=args.seed, tol=args.tol, window=args.window,
                      eval_every=args.eval_every, grad_replicates=args.grad_replicates,
                      early_stop=not args.no_early_stop,
                      freeze=("mu",) if ppca else (), tie=("log_sigma",) if ppca else ())
    fresh = (lambda rng, n: model.sample(truth, n, rng)[1]) if args.fresh_data else None
    start_clock = time.perf_counter()
    result = train(model, guide, data, cfg, theta=start, eval_data=held_out, true_theta=truth,
                   checkpoint=args.checkpoint, resume=args.resume, progress=not args.no_progress,
                   overwrite=args.overwrite, sample_data=fresh)
    _report(result, time.perf_counter() - start_clock, model, truth, data, ppca)
    written = [args.checkpoint] if args.checkpoint else []
    written += _write_outputs(args, result, model, data, held_out, ppca)
    if result.stopped_by == "interrupted":
        print(f"rws-ref train: interrupted at iteration {result.iterations}; "
              + (f"written: {', '.join(written)}" if written else "nothing written (no --checkpoint or --out)"),
              file=sys.stderr)
        return 130
    for path in written[1 if args.checkpoint else 0:]:
        print(f"written to {path}")
    return 0


def _write_outputs(args, result, model, data, held_out, ppca):
    """The learned parameters, the metrics and the learning curves, each written atomically; the paths."""
    written = []
    if args.save_params:
        arrays = {**{f"theta/{k}": v for k, v in result.theta.items()},
                  **{f"phi/{k}": v for k, v in result.phi.items()}}
        atomic_write(args.save_params, lambda handle: np.savez(handle, **arrays), binary=True)
        written.append(args.save_params)
    if args.out:
        _write_metrics(args.out, result.history)
        written.append(args.out)
    if args.plot:
        from .experiments.train import plot_history
        reference = ({"log p at the PPCA maximum likelihood":
                      float(ppca_reference(model, data, held_out))} if ppca else None)
        plot_history(args.plot, {f"{args.method}, K = {args.K}": result.history}, f"rws-ref train --model {args.model}",
                     reference)
        written.append(args.plot)
    return written


def ppca_reference(model, data, held_out):
    """Mean log p(held-out x) under the closed-form PPCA maximum-likelihood θ of the training data."""
    from .models.linear_gaussian_exact import ppca_max_likelihood_theta
    return np.mean(model.log_marginal(ppca_max_likelihood_theta(data, model.dz), held_out))


def _report(result, seconds, model, truth, data, ppca):
    """The end summary: stopping reason and time, each metric from start to end, and the learned
    summary (e.g. mixture weights) beside the truth."""
    first, last = result.history[0], result.history[-1]
    print(f"stopped by {result.stopped_by} after {result.iterations} iterations in {seconds:.1f} s")
    for key in last:
        if key != "iteration":
            print(f"  {key:<22} {first.get(key, float('nan')):>12.5g} → {last[key]:<12.5g}")
    if ppca:
        from .models.linear_gaussian_exact import ppca_max_log_likelihood
        gap = ppca_max_log_likelihood(data, model.dz) - float(np.mean(model.log_marginal(result.theta, data)))
        print(f"  gap to the closed-form PPCA maximum likelihood: {gap:.5f} nats per datapoint")
    if callable(getattr(model, "summary", None)) and truth is not None:
        for key, value in model.summary(result.theta).items():
            print(f"  learned {key}: {np.array2string(np.asarray(value), precision=3, max_line_width=110)}")
            true_value = np.asarray(model.summary(truth)[key])
            print(f"  true    {key}: {np.array2string(true_value, precision=3, max_line_width=110)}")


def _check_method(method, model, guide):
    # each method asks for capabilities of the protocol; refuse before any work starts
    if method == "iwae" and not all(callable(getattr(obj, cap, None)) for obj, cap in (
            (guide, "reparameterize"), (guide, "pull_back"), (guide, "grad_z_log_prob"), (model, "grad_z_log_joint"))):
        raise _UserError("--method iwae needs a reparameterizable guide (reparameterize, pull_back, grad_z_log_prob) "
                         "and a model with grad_z_log_joint: e.g. --model linear-gaussian")
    if method in ("reinforce", "vimco", "defensive") and protocol.domain(guide, "z") == "real":
        raise _UserError(f"--method {method} is for discrete latents (a guide with a discrete z_domain): "
                         f"e.g. --model mixture or belief-net")


def _run_reproduce(args):
    module = importlib.import_module(f"rws_ref.experiments.{args.experiment.replace('-', '_')}")
    experiment, summary_table = getattr(module, args.experiment.replace("-", "_")), module.summary_table
    if args.experiment != "le2019-gmm" and (args.start or args.raw_x):
        raise _UserError(f"--start and --raw-x are options of le2019-gmm, not of {args.experiment}")
    own = {"start": args.start or "authors-far", "inputs": "raw" if args.raw_x else "standardized"} if (
        args.experiment == "le2019-gmm") else {}
    own.update({k: tuple(v) for k, v in vars(args).items() if v and k in ("methods", "ks")})
    _, summary, seconds = experiment(args.out, budget=args.budget, seeds=args.seeds, jobs=args.jobs,
                                     progress=not args.no_progress, scheduler=args.scheduler, fresh=args.fresh,
                                     max_runs=args.max_runs, **own)
    print(summary_table(summary))
    figures = ", ".join(sorted(name for name in os.listdir(args.out) if name.endswith(".png")))
    print(f"{seconds:.0f} s; results in {args.out}: results.csv, summary.json, {figures}")
    return 0


def _run_exercises(args):
    from .checking.exercises import command
    return command(args.action or "list", getattr(args, "name", None), getattr(args, "file", None))


def _run_vectors(args):
    from .checking.vectors import write
    check_output_path(args.out, "--out", (".json",), overwrite=args.overwrite)
    write(args.out, args.seed)
    print(f"test vectors (seed {args.seed}) written to {args.out}")
    return 0


def _write_metrics(path, history):
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "iteration", k))
    def write_csv(handle):
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    atomic_write(path, (lambda handle: json.dump(history, handle, indent=1)) if path.lower().endswith(".json")
                 else write_csv)


def main(argv=None):
    """Entry point of the ``rws-ref`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        handler = {"audit": _run_audit, "train": _run_train, "vectors": _run_vectors,
                   "reproduce": _run_reproduce, "exercises": _run_exercises}[args.command]
        return handler(args)
    except KeyboardInterrupt:
        print(f"rws-ref {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.traceback:
            traceback.print_exc()
        print(f"rws-ref {args.command}: {_describe_error(err)}", file=sys.stderr)
        return 2


def _describe_error(err):
    """One line: what went wrong, and — for an exception raised in the user's own code — where."""
    frames = user_frames(err)
    frame = frames[-1] if frames else None
    if isinstance(err, SyntaxError) and err.filename and not in_rws_ref(err.filename):      # the user's file
        return f"error in your code at {err.filename}:{err.lineno}: SyntaxError: {err.msg}"
    if isinstance(err, (_UserError, ValueError, TypeError, OSError, MemoryError, ImportError)) \
            and frame is None:
        return f"error: {err}"
    if frame is not None:
        return (f"error in your code at {frame.filename}:{frame.lineno} in {frame.name}: "
                f"{type(err).__name__}: {err} (--traceback shows the whole traceback)")
    return (f"internal error: {type(err).__name__}: {err} (a bug in rws_ref; --traceback shows where, "
            f"please report it)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
