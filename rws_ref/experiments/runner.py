"""Running an experiment's grid of training runs: its folder, its run files, the pool or Dask, the summary.

An experiment (rws_ref.reproduce's le2019-gmm, bb2015-digits) is a grid of runs — one per
method, K and seed — each a pure function of its task, so the runs can go anywhere:

- **locally** (the default): ``jobs`` worker processes of this machine (at most one per pending run);
- **on a Dask cluster** (``scheduler="tcp://host:8786"``, ``rws-ref reproduce … --scheduler ADDRESS``):
  every run is a task of ``dask.distributed`` (``pip install 'rws_ref[dask]'``).  The workers return
  the finished run's rows; the client writes every file, so the results land where it can resume
  them.  A run is the unit of resumption on Dask (a worker writes nothing: an interrupted run starts
  again); locally a run also resumes from its own checkpoint.  The same seeds give the same numbers,
  bit for bit, either way (tests/experiments/test_dask.py).

The folder belongs to the experiment: ``DIR/rws-ref-reproduce.json`` records the experiment and its
configuration (budget, iterations, methods, K, version).  A folder with files rws_ref did not write
is refused; a rerun with another configuration is refused (``fresh=True`` / ``--fresh`` starts afresh,
removing only the run files rws_ref wrote there); a finished run's file (``runs/NAME.json``, holding
its configuration and its rows) is read back only if it is intact, finite and of this configuration.
"""
import csv
import dataclasses
import functools
import json
import math
import multiprocessing
import numbers
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from scipy.stats import t

from .. import __version__
from .._checks import TooLarge, check_count
from .._io import atomic_write, check_output_path
from .loop import progress_bar

__all__ = ["MARKER", "prepare_folder", "run_file", "load_run", "save_run", "map_runs", "interval", "MAX_RUNS",
           "check_budget", "check_arguments", "check_grid", "configuration", "Experiment", "run_experiment",
           "run_grid", "rows_of", "finished_run", "final_summary", "median_table", "write_outputs", "paired_summary",
           "resolvable_difference"]

MARKER = "rws-ref-reproduce.json"
#: a grid of more runs than this is refused before it starts unless ``max_runs`` is raised
MAX_RUNS = 2000


def check_budget(budget, full_iters):
    """A fraction of the paper's iterations in (0, 1] (NumPy numbers too); returns it as a float."""
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not 0 < float(budget) <= 1:
        raise ValueError(f"budget must be a number in (0, 1] (a fraction of the paper's {full_iters:,} "
                         f"iterations); got {budget!r}")
    return float(budget)


def check_arguments(budget, seeds, jobs, methods, ks, known_methods, known_ks, full_iters):
    """An experiment's arguments, checked before any work: the budget (:func:`check_budget`), the seeds and jobs
    (positive counts), and the methods and K among the experiment's own.  Returns (budget, seeds, jobs)."""
    budget = check_budget(budget, full_iters)
    seeds, jobs = check_count(seeds, "seeds"), check_count(jobs, "jobs")
    unknown = [m for m in methods if m not in known_methods] + [k for k in ks if k not in known_ks]
    if unknown:
        raise ValueError(f"unknown methods or K: {unknown}; methods {list(known_methods)}, K {list(known_ks)}")
    return budget, seeds, jobs


def check_grid(n_runs, iters, seconds_per_iteration, max_runs):
    """Refuse, before any work, a grid above ``max_runs`` runs; returns the estimated CPU hours."""
    max_runs = check_count(max_runs, "max_runs")
    hours = n_runs * iters * seconds_per_iteration / 3600
    if n_runs > max_runs:
        raise TooLarge(f"{n_runs:,} runs of {iters:,} iterations (about {hours:,.3g} CPU hours) is above the limit "
                       f"of {max_runs:,} runs; pass max_runs={n_runs} (--max-runs {n_runs}) to allow it")
    return hours


def prepare_folder(out_dir, config, fresh=False):
    """Make ``out_dir`` the experiment's folder, or check that it is: refuse a folder holding files rws_ref
    did not write, or runs of another configuration (unless ``fresh``: then remove the old run files).
    Returns the path of runs/."""
    out_dir = os.fspath(out_dir)
    marker = os.path.join(out_dir, MARKER)
    if not os.path.isdir(out_dir):
        check_output_path(out_dir, "out")                   # its parent must exist and be writable
        os.makedirs(out_dir)
    elif not os.path.exists(marker):
        if os.listdir(out_dir):
            found = ", ".join(sorted(os.listdir(out_dir))[:3])
            raise ValueError(f"out {out_dir} holds files rws-ref did not write ({found}…): choose a new or empty "
                             f"folder (nothing there is replaced)")
    else:
        old = _read_json(marker, "the folder's configuration")
        if not isinstance(old, dict):
            raise ValueError(f"{marker} is not an rws-ref configuration")
        differ = [k for k in sorted(set(old) | set(config)) if k != "version" and old.get(k) != config.get(k)]
        if differ and not fresh:
            k = differ[0]
            raise ValueError(f"out {out_dir} holds runs of another configuration: {k} = {old.get(k)!r} there, "
                             f"{config.get(k)!r} now; choose another folder, or --fresh (fresh=True) to start "
                             f"afresh there")
        if differ or fresh:
            _remove_runs(out_dir)
    os.makedirs(os.path.join(out_dir, "runs"), exist_ok=True)
    atomic_write(marker, lambda handle: json.dump(config, handle, indent=1, sort_keys=True))
    return os.path.join(out_dir, "runs")


#: the names of the files run_grid writes in runs/: a run's file and its checkpoint
_RUN_NAME = re.compile(r"^[\w.-]+-K\d+-seed\d+\.(json|npz)$")


def _remove_runs(out_dir):
    """Remove what rws-ref wrote in runs/ — run files (named like a run, holding a run's configuration) and
    checkpoints — and the outputs; a file of the user's in the folder stays."""
    runs = os.path.join(out_dir, "runs")
    if os.path.isdir(runs):
        for name in os.listdir(runs):
            path = os.path.join(runs, name)
            if _RUN_NAME.match(name) and (name.endswith(".npz") or _is_run_file(path)):
                os.unlink(path)
    for name in ("results.csv", "summary.json"):
        if os.path.exists(os.path.join(out_dir, name)):
            os.unlink(os.path.join(out_dir, name))


def _is_run_file(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("config"), dict) and "experiment" in data["config"]


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: {what} is not readable JSON ({type(err).__name__}: {err}); remove it to "
                         f"rerun that part") from None


def run_file(runs_dir, name):
    """The path of a finished run's file."""
    return os.path.join(runs_dir, name + ".json")


def save_run(path, config, run):
    """A finished run (``run_one``'s result: its rows, final parameters and seconds) with its configuration,
    atomically."""
    atomic_write(path, lambda handle: json.dump({"config": config, **run}, handle))


def finished_run(rows, theta, phi, seconds):
    """What an experiment's ``run_one`` returns: the evaluation rows, the final θ and φ (as lists, for the
    run file and the figures drawn from the learned models) and the run's wall seconds."""
    def lists(params):
        return {name: np.asarray(value, dtype=np.float64).tolist() for name, value in params.items()}
    return {"rows": rows, "parameters": {"theta": lists(theta), "phi": lists(phi)}, "seconds": float(seconds)}


def load_run(path, config, keys):
    """A finished run (rows, parameters, seconds), if its file is intact and of this configuration; else
    ValueError naming the file."""
    data = _read_json(path, "the run file")
    if not isinstance(data, dict) or data.get("config") != config:
        found = data.get("config") if isinstance(data, dict) else data
        raise ValueError(f"{path}: the run file is of another configuration ({found!r}, expected {config}); "
                         f"remove it, or rerun with --fresh")
    rows = data.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: the run file holds no rows; remove it to rerun the run")
    for row in rows:
        if not isinstance(row, dict) or any(not isinstance(row.get(k), (int, float)) or isinstance(row.get(k), bool)
                                            or not math.isfinite(row[k]) for k in keys):
            raise ValueError(f"{path}: a row is not finite numbers for {', '.join(keys)} ({row!r}); remove the "
                             f"file to rerun the run")
    last = config.get("iterations")
    if last is not None and not any(isinstance(row, dict) and row.get("iteration") == last for row in rows):
        raise ValueError(f"{path}: the run file lacks its last row (iteration {last:,}) — an unfinished run; remove "
                         f"it to rerun the run")
    parameters, seconds = data.get("parameters"), data.get("seconds")
    if (not isinstance(parameters, dict) or set(parameters) != {"theta", "phi"}
            or not all(isinstance(p, dict) for p in parameters.values())
            or isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0):
        raise ValueError(f"{path}: the run file lacks the final parameters or the run's seconds; remove it to "
                         f"rerun the run")
    return {"rows": rows, "parameters": parameters, "seconds": float(seconds)}


@dataclass(frozen=True)
class Experiment:
    """What defines an experiment for :func:`run_experiment`: its name, the paper's iterations, the estimated
    CPU seconds per iteration (for the grid's size check), its methods (in table order), the keys of its
    rows, ``run_one`` (a task → :func:`finished_run`), the learning-curve figure's file name and
    ``plot(rows, path, iterations)``, optionally ``more_figures(out_dir, runs)`` drawn from the runs, and
    ``options``."""
    name: str
    full_iters: int
    seconds_per_iteration: float
    methods: dict
    keys: tuple
    run_one: Callable
    figure: str
    plot: Callable
    more_figures: Optional[Callable] = None
    #: the experiment's own settings (e.g. le2019-gmm's start): part of the folder's and every run's
    #: configuration, and handed to ``run_one`` as a sixth element of its task when there are any
    options: dict = dataclasses.field(default_factory=dict)
    #: ``failed(first_row, last_row)`` -> bool, the experiment's stated criterion of a failed run; the summary
    #: counts the failed seeds of each method and K
    failed: Optional[Callable] = None
    #: (reference method, key): the summary's "paired" part compares every method with the reference seed by
    #: seed on that key (:func:`paired_summary`)
    paired: Optional[tuple] = None


def run_experiment(experiment, out_dir, pairs, budget, seeds, jobs=1, scheduler=None, progress=False, fresh=False,
                   max_runs=MAX_RUNS):
    """Run (or resume) ``experiment`` over ``pairs`` (method, K) × ``seeds`` at ``budget`` (checked by the
    caller, as are the seeds and jobs) in ``out_dir``: refuse a grid above ``max_runs`` before any work, run
    it (:func:`run_grid`), write results.csv, summary.json and the figures.  Returns (rows, summary, seconds)."""
    iters = max(10, int(round(budget * experiment.full_iters)))
    check_grid(len(pairs) * seeds, iters, experiment.seconds_per_iteration, max_runs)     # before listing it
    grid = [(m, K, s) for m, K in pairs for s in range(seeds)]
    runs = prepare_folder(out_dir, configuration(experiment.name, budget, iters, **experiment.options), fresh=fresh)
    start = time.perf_counter()
    done = run_grid(experiment.name, grid, experiment.run_one, experiment.keys, runs, iters, jobs=jobs,
                    scheduler=scheduler, progress=progress, options=experiment.options)
    rows = rows_of(done)
    summary = final_summary(done, iters, budget, seeds, experiment.methods, experiment.keys, experiment.failed)
    if experiment.paired is not None:
        summary["paired"] = paired_summary(done, iters, *experiment.paired)
    write_outputs(out_dir, rows, summary, experiment.keys, experiment.figure, experiment.plot)
    if experiment.more_figures is not None:
        experiment.more_figures(out_dir, done)
    return rows, summary, time.perf_counter() - start


def run_grid(experiment, grid, run_one, keys, runs, iters, jobs=1, scheduler=None, progress=False, options=None):
    """Every run of ``grid`` (tuples (method, K, seed)) finished: read back from its file when it is there,
    run otherwise (``run_one((method, K, seed, iters, checkpoint or None))`` → :func:`finished_run`), its
    file written by this process as it ends; ``options`` (a dict) joins each run's configuration and, when
    not empty, its task.  Returns {(method, K, seed): run} in the order of the grid;
    :func:`rows_of` flattens it."""
    finished, pending = {}, []

    def name(m, K, s):
        return f"{m.replace('δ-', 'delta-')}-K{K}-seed{s}"

    def config(m, K, s):
        return {"experiment": experiment, "method": m, "K": K, "seed": s, "iterations": iters,
                "version": __version__, **(options or {})}
    for m, K, s in grid:
        path = run_file(runs, name(m, K, s))
        if os.path.exists(path):
            finished[m, K, s] = load_run(path, config(m, K, s), keys)
        else:       # a run's checkpoint is written where it runs: locally only (a Dask run restarts whole)
            pending.append((m, K, s, iters, None if scheduler is not None else
                            os.path.join(runs, name(m, K, s) + ".npz")) + ((dict(options),) if options else ()))

    def save(task, run):
        m, K, s, _, ckpt = task[:5]
        save_run(run_file(runs, name(m, K, s)), config(m, K, s), run)
        if ckpt is not None and os.path.exists(ckpt):
            os.unlink(ckpt)
        finished[m, K, s] = run
    map_runs(run_one, pending, jobs=jobs, scheduler=scheduler, progress=progress,
             desc=f"rws-ref reproduce {experiment}", on_done=save)
    return {key: finished[key] for key in grid}


def rows_of(runs):
    """Every evaluation row of a grid's runs (:func:`run_grid`'s result), in its order."""
    return [row for run in runs.values() for row in run["rows"]]


def final_summary(runs, iters, budget, seeds, methods, keys, failed=None):
    """The values at the last iteration per (method, K) of a grid's runs, in the order of ``methods`` then K:
    for each of ``keys`` the mean over seeds, its 95 % t-interval, the range, the median and the 25 and 75 %
    quartiles (numpy's linear interpolation; a bimodal outcome shows in them where a t-interval reaches
    below zero); with ``failed(first_row, last_row)``, the number of seeds that failed; and apart (the one part
    that is not a function of the seeds) the mean wall seconds of a run.  The summary.json of an experiment."""
    final, seconds, failures = {}, {}, {}
    for (m, K, _), run in runs.items():
        last = [row for row in run["rows"] if row["iteration"] == iters]
        final.setdefault((m, K), []).extend(last)
        seconds.setdefault((m, K), []).append(run["seconds"])
        if failed is not None:
            failures[m, K] = failures.get((m, K), 0) + sum(bool(failed(run["rows"][0], row)) for row in last)
    table = {}
    for (m, K), rows in sorted(final.items(), key=lambda item: (list(methods).index(item[0][0]), item[0][1])):
        cell = {}
        for key in keys:
            values = [r[key] for r in rows]
            mean, low, high = interval(values)
            q25, median, q75 = (float(v) for v in np.percentile(values, [25, 50, 75]))
            cell.update({key: mean, f"{key}_interval": [low, high], f"{key}_range": [min(values), max(values)],
                         f"{key}_median": median, f"{key}_quartiles": [q25, q75]})
        table[f"{m} K={K}"] = {**cell, "seeds": len(rows), **({"failed": failures[m, K]} if failed else {})}
    return {"iterations": iters, "budget": budget, "seeds": seeds, "interval": "95% Student t over seeds",
            **({"failed_when": " ".join((failed.__doc__ or "").split())} if failed else {}),
            "final": table, "seconds_per_run": {f"{m} K={K}": float(np.mean(seconds[m, K])) for m, K in final}}


def median_table(summary, keys, names, methods):
    """The final values as text, a block per K and a line per method: each of ``keys`` (headed by ``names``)
    as the median over seeds with its 25–75 % quartiles in brackets (one seed: the value), and the failed
    seeds when the experiment states a criterion."""
    ks = sorted({int(k.split("K=")[1]) for k in summary["final"]})
    several, counted = summary["seeds"] > 1, "failed_when" in summary
    width = 28 if several else 9
    lines = [f"{summary['iterations']:,} iterations per run (budget {summary['budget']}), {summary['seeds']} "
             f"seed(s); at the end: " + ("median [25%, 75%] over seeds" if several else "the value")]
    if counted:
        lines.append(f"failed: the seeds where {summary['failed_when']}")
    for K in ks:
        lines.append(f"K = {K:<7}" + "".join(f"{name:>{width}}" for name in names) + ("  failed" if counted else ""))
        for method in methods:
            c = summary["final"].get(f"{method} K={K}")
            if c is None:
                continue
            cells = []
            for key in keys:
                text = f"{c[f'{key}_median']:.4f}"
                if several:
                    low, high = c[f"{key}_quartiles"]
                    text += f" [{low:.4f}, {high:.4f}]"
                cells.append(f"{text:>{width}}")
            lines.append(f"  {method:<9}" + "".join(cells) + (f"  {c['failed']}/{c['seeds']}" if counted else ""))
    return "\n".join(lines)


def paired_summary(runs, iters, reference, key, power=0.8, level=0.95):
    """Every (method, K) of a grid's runs against ``reference`` on ``key`` at the last iteration, seed by
    seed: against the reference at the same K, or, where the reference did not run at that K, at each K it
    ran at.  For the n seeds both ran, the differences d_s = method − reference: their mean, standard
    deviation, the ``level`` Student-t interval of the mean (n − 1 degrees of freedom), and ``resolvable``, the
    true mean difference a two-sided paired t-test at 1 − ``level`` detects with probability ``power`` when the
    differences are normal with this standard deviation (the noncentral t's power, solved for the difference).
    Returns {"method K=k − reference K=k'": {...}}."""
    final = {}
    for (m, K, s), run in runs.items():
        last = [row[key] for row in run["rows"] if row["iteration"] == iters]
        if last:
            final[m, K, s] = last[0]
    ref_ks = sorted({K for m, K, _ in final if m == reference})
    out = {}
    for m, K in dict.fromkeys((m, K) for m, K, _ in final if m != reference):
        for ref_k in ([K] if K in ref_ks else ref_ks):
            seeds = sorted(s for mm, kk, s in final if (mm, kk) == (m, K) and (reference, ref_k, s) in final)
            d = np.array([final[m, K, s] - final[reference, ref_k, s] for s in seeds])
            if d.size < 2:
                continue
            mean, low, high = interval(d, level)
            sd = float(np.std(d, ddof=1))
            out[f"{m} K={K} − {reference} K={ref_k}"] = {
                "seeds": int(d.size), "mean": mean, "interval": [low, high], "sd": sd,
                "resolvable": resolvable_difference(sd, d.size, power, level)}
    return out


def resolvable_difference(sd, n, power=0.8, level=0.95):
    """The smallest true mean difference δ a two-sided paired t-test (size 1 − ``level``, n − 1 degrees of
    freedom) rejects with probability ``power`` when n paired differences are normal with standard deviation
    ``sd``.  The test statistic is T = (Z + λ) / sqrt(V / (n − 1)) with Z standard normal, V chi-square with
    n − 1 degrees of freedom and λ = δ √n / sd, so its power is
    E_V[Φ(λ − c·sqrt(V/(n−1))) + Φ(−λ − c·sqrt(V/(n−1)))] with c the t quantile; the expectation is integrated
    over V's density and the power solved for δ.  0 when sd is 0."""
    from scipy.integrate import quad
    from scipy.optimize import brentq
    from scipy.stats import chi2, norm
    n = check_count(n, "n", minimum=2)
    if sd == 0:
        return 0.0
    df = n - 1
    crit = float(t.ppf(0.5 + level / 2, df))

    def short(lam):
        def integrand(v):
            s = crit * np.sqrt(v / df)
            return (norm.cdf(lam - s) + norm.cdf(-lam - s)) * chi2.pdf(v, df)
        return quad(integrand, 0.0, np.inf, limit=200)[0] - power
    return float(brentq(short, 0.0, 100.0, xtol=1e-10)) * sd / np.sqrt(n)


def write_outputs(out_dir, rows, summary, keys, figure, plot):
    """results.csv (every row), summary.json and the figure ``plot(rows, path, iterations)``, each atomically."""
    fields = ["method", "K", "seed", "iteration", *keys]

    def write_csv(handle):
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(os.path.join(out_dir, "results.csv"), write_csv)
    atomic_write(os.path.join(out_dir, "summary.json"), lambda handle: json.dump(summary, handle, indent=1))
    plot(rows, os.path.join(out_dir, figure), summary["iterations"])


def map_runs(fn, tasks, jobs=1, scheduler=None, progress=False, desc="runs", on_done=None):
    """``fn(task)`` for every task, here or on a Dask cluster; results in the order of ``tasks``.

    ``on_done(task, result)`` is called in this process as each run finishes (the client writes the files).
    Each run uses one BLAS thread (threadpoolctl), wherever it runs.
    Locally, ``jobs`` processes (capped at the number of tasks); with ``scheduler`` (an address, or a
    ``dask.distributed.Client``), one Dask task per run."""
    tasks = list(tasks)
    fn = functools.partial(_one_blas_thread, fn)
    bar = progress_bar(progress, len(tasks), desc, "run")
    results = [None] * len(tasks)

    def done(i, result):
        results[i] = result
        if on_done is not None:
            on_done(tasks[i], result)
        bar.update(1)
    try:
        if scheduler is not None:
            _map_dask(fn, tasks, scheduler, done)
        elif min(jobs, len(tasks)) <= 1:
            for i, task in enumerate(tasks):
                done(i, fn(task))
        else:
            with multiprocessing.get_context("fork").Pool(min(jobs, len(tasks))) as pool:
                for i, result in enumerate(pool.imap(fn, tasks)):
                    done(i, result)
    finally:
        bar.close()
    return results


def _one_blas_thread(fn, task):
    """``fn(task)`` with the BLAS library on one thread: the runs are the parallelism, and BLAS threads on
    top of them oversubscribe the cores (measured: an (8×2000)·(2000×64) product took 13 ms instead of 0.2 ms
    with two runs on two cores)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        return fn(task)


def _map_dask(fn, tasks, scheduler, done):
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ImportError("--scheduler needs dask.distributed: pip install 'rws_ref[dask]'") from None
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler, set_as_default=False)
    try:
        futures = client.map(fn, tasks, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures, loop=client.loop):       # this client, not a default one
            done(index[future.key], future.result())
    finally:
        if client is not scheduler:
            client.close()


def interval(values, level=0.95):
    """(mean, low, high) of ``values`` over seeds: Student's t interval of the mean (low = high = mean for
    one value)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(np.mean(values))
    if values.size < 2:
        return mean, mean, mean
    half = float(t.ppf(0.5 + level / 2, values.size - 1) * np.std(values, ddof=1) / np.sqrt(values.size))
    return mean, mean - half, mean + half


def configuration(experiment, budget, iterations, **more):
    """What a folder's marker records (a rerun may add methods, K or seeds, never change these)."""
    return {"experiment": experiment, "budget": budget, "iterations": iterations, "version": __version__, **more}
