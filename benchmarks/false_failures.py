"""How often a correct implementation fails check_estimator: every kind on every pair and protocol variant (the
matrix of tests/checking/test_testing.py, with the sampler checks and the defaults), under many seeds.

Run:  python benchmarks/false_failures.py [--seeds 50] [--jobs 2] [--write]

The stated false-failure rate of one check: the deterministic properties fail a correct implementation only
by rounding (never, at rtol 1e-8); the sampler checks run up to four tests (χ² or the PIT, and the score
identity, for the guide and for the model), each at 1e-3 — at most 4e-3 per check, and at most
1 − (1 − 4e-3)^P for P pairs sharing one sampler.  The table gives, per (kind, pair, form), the failures
over the seeds; the summary the total against the stated bound with its binomial 99.9 % upper limit.
``--write`` stores it in docs/figures/false_failures.json (docs/checking.md quotes it).
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


def _matrix():
    import test_testing as t
    return t.MATRIX


def _one(args):
    kind, pair, form, seeds = args
    import test_testing as t
    from protocol_variants import own_densities

    import rws_ref
    from rws_ref import registry
    from rws_ref.checking import testing
    model, guide = {**t.PAIRS, **t._BUILT}[pair]
    entry = registry.get(kind)
    fn = entry.function if form == "model, guide" else own_densities(entry, model, guide)
    data = None
    if pair == "densities only":
        data = rws_ref.GaussianMixture(4, scale=6.0).sample(t.PAIRS["mixture"][0].true_theta(), 50,
                                                            np.random.default_rng(1))[1]
    failures, which, start = 0, {}, time.perf_counter()
    for seed in range(seeds):
        report = testing.check_estimator(fn, kind, model, guide, seed=1000 + seed, data=data)
        if not report.ok:
            failures += 1
            for r in report.failed():
                which[r.name] = which.get(r.name, 0) + 1
    return {"kind": kind, "pair": pair, "form": form, "seeds": seeds, "failures": failures, "failed": which,
            "seconds_per_check": (time.perf_counter() - start) / seeds}


def main(seeds, jobs, write):
    from scipy import stats
    matrix = _matrix()
    with ProcessPoolExecutor(jobs) as pool:
        rows = []
        for row in pool.map(_one, [(k, p, f, seeds) for k, p, f in matrix]):
            rows.append(row)
            if row["failures"]:
                print(f"  {row['kind']} on {row['pair']} ({row['form']}): {row['failures']}/{seeds} {row['failed']}",
                      file=sys.stderr, flush=True)
    checks = sum(r["seeds"] for r in rows)
    failures = sum(r["failures"] for r in rows)
    by_property = {}
    for r in rows:
        for name, n in r["failed"].items():
            by_property[name] = by_property.get(name, 0) + n
    upper = float(stats.beta.ppf(0.999, failures + 1, checks - failures)) if checks else float("nan")
    summary = {"checks": checks, "failures": failures, "rate": failures / checks, "upper_99_9": upper,
               "stated_bound": 4e-3, "by_property": by_property, "combinations": len(rows), "seeds": seeds,
               "seconds": sum(r["seconds_per_check"] * r["seeds"] for r in rows)}
    print(f"{len(rows)} (kind, pair, form) combinations × {seeds} seeds = {checks} checks: {failures} failed "
          f"(rate {failures / checks:.2e}, 99.9 % upper limit {upper:.2e}; stated bound 4e-3 per check, from the "
          f"sampler checks); by property: {by_property}")
    if write:
        path = ROOT / "docs" / "figures" / "false_failures.json"
        path.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    main(args.seeds, args.jobs, args.write)
