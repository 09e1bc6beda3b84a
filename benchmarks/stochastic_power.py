"""Does check_stochastic's power statement predict how often it catches a bug?

For each planted bug of tests/checking/test_endtoend.py (a sampler that ignores φ, K copies of one draw, one
datapoint's particles reused, a defensive proposal evaluated at another draw, ι applied twice, a wrong
reparameterization scale) and for the correct estimators:

1. the bug's mean deviation Δ (mean of the buggy estimator − the exact mean) and its own standard deviation,
   per entry, from ``--reference-runs`` runs of it (Monte Carlo; the standard error of Δ is printed);
2. the predicted detection probability at R replicates, from the report's per-entry power
   (``StochasticReport.detection_probability(Δ, R, sd)``);
3. the measured detection rate: the fraction of ``--seeds`` independent checks at R that fail.

Run:  python benchmarks/stochastic_power.py [--seeds 100] [--replicates 1000 2000] [--jobs 2] [--write]
--write stores the table in docs/figures/stochastic_power.json (docs/checking.md cites it).
"""
import argparse
import json
import pathlib
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "checking")]


def _cases():
    import test_endtoend as e
    out = [(f"correct {kind}", kind, fn, extra, "mix") for kind, fn, extra in e.CORRECT
           if kind in ("wake_phi", "defensive_wake_phi", "insomnia")]
    out += [(f"bug: {name}", kind, fn, extra, "mix") for name, kind, fn, extra in e.PLANTED]
    out.append(("bug: a wrong reparameterization scale", "iwae_phi", _wrong_scale, {}, "lg"))
    return out


def _wrong_scale(theta, phi, x, rng):
    import test_endtoend as e
    return e.iwae(theta, phi, x, rng, wrong_scale=True)


def _setting(which):
    import test_endtoend as e
    return (e.MIX, e.CAT, e.TH, e.PH, e.X, e.K) if which == "mix" else (e.LG1, e.DG1, e.TH1, e.PH1, e.X1, 1)


def _reference(index, runs):
    """(Δ, sd, se of Δ) of case ``index`` from ``runs`` runs."""
    from rws_ref._trees import flatten, unflatten
    from rws_ref.checking import endtoend
    name, kind, fn, extra, which = _cases()[index]
    model, guide, th, ph, x, K = _setting(which)
    mean, _, _ = endtoend.reference_moments(kind, model, guide, th, ph, x, K, extra.get("iota"), extra.get("delta"),
                                            extra.get("M"))
    outs = np.array([flatten(fn(th, ph, x, np.random.default_rng([7, r])), mean) for r in range(runs)])
    sd = outs.std(axis=0, ddof=1)
    return (unflatten(outs.mean(axis=0) - flatten(mean, mean), mean), unflatten(sd, mean),
            float(np.max(sd / np.sqrt(runs))))


def _measure(index, replicates, seeds):
    from rws_ref.checking import endtoend
    name, kind, fn, extra, which = _cases()[index]
    model, guide, th, ph, x, K = _setting(which)
    fails, report = 0, None
    for seed in range(seeds):
        report = endtoend.check_stochastic(fn, kind, model, guide, th, ph, x, K=K, replicates=replicates,
                                           seed=10_000 + seed, **extra)
        fails += not report.ok
    return fails, report


def main(seeds, replicates, reference_runs, jobs, write):
    cases = _cases()
    rows = []
    with ProcessPoolExecutor(jobs) as pool:
        refs = list(pool.map(_reference, range(len(cases)), [reference_runs] * len(cases)))
        jobs_ = {(i, r): pool.submit(_measure, i, r, seeds) for i in range(len(cases)) for r in replicates}
        for (i, r), future in jobs_.items():
            start = time.perf_counter()
            fails, report = future.result()
            deviation, sd, se = refs[i]
            predicted = report.detection_probability(deviation, r, sd) if cases[i][0].startswith("bug") else \
                report.alpha
            best, median, worst = report.relative_power()
            rows.append({"case": cases[i][0], "replicates": r, "seeds": seeds, "failed": fails,
                         "measured": fails / seeds, "predicted": float(predicted),
                         "binomial_se": float(np.sqrt(max(predicted * (1 - predicted), 1e-12) / seeds)),
                         "relative_power": [best, median, worst], "deviation_se": se})
            print(f"{cases[i][0]:<52} R = {r:>5}: failed {fails:>3}/{seeds} = {fails / seeds:.3f}, predicted "
                  f"{predicted:.3f} (±{rows[-1]['binomial_se']:.3f}); power best/median/worst "
                  f"{best:.2g}/{median:.2g}/{worst:.2g}  [{time.perf_counter() - start:.0f} s]", flush=True)
    if write:
        path = ROOT / "docs" / "figures" / "stochastic_power.json"
        path.write_text(json.dumps({"seeds": seeds, "reference_runs": reference_runs, "rows": rows}, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100, help="independent checks per case and R (default 100)")
    parser.add_argument("--replicates", type=int, nargs="+", default=[1000, 2000], help="R values (default 1000 2000)")
    parser.add_argument("--reference-runs", type=int, default=40_000, help="runs that estimate each bug's Δ")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    main(args.seeds, args.replicates, args.reference_runs, args.jobs, args.write)
