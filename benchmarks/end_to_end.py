"""The end-to-end checks under many seeds: how often a correct implementation fails (the false-failure
rate, stated 1e-3 per check) and how often each planted bug is caught (the power), with the time of a check.

Run:  python benchmarks/end_to_end.py [--seeds 50] [--replicates 1000]

The implementations are those of tests/checking/test_endtoend.py and tests/checking/test_sampling.py
(correct ones and the planted bugs of the issue); each seed changes the generators of the runs
(check_stochastic's ``seed``) and of the sampler checks.  Prints a table and writes it to
docs/figures/end_to_end.json.
"""
import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "checking")]


def main(seeds, replicates, progress=True):
    import test_endtoend as e
    import test_sampling as s

    from rws_ref.checking import endtoend, sampling
    stochastic = [(f"correct {kind}", kind, fn, extra, e.MIX, e.CAT, e.TH, e.PH, e.X, e.K)
                  for kind, fn, extra in e.CORRECT]
    stochastic.append(("correct iwae_phi (quadrature)", "iwae_phi", e.iwae, {}, e.LG1, e.DG1, e.TH1, e.PH1, e.X1, 1))
    stochastic += [(f"bug: {name}", kind, fn, extra, e.MIX, e.CAT, e.TH, e.PH, e.X, e.K)
                   for name, kind, fn, extra in e.PLANTED]
    stochastic.append(("bug: a wrong reparameterization scale", "iwae_phi",
                       lambda theta, phi, x, rng: e.iwae(theta, phi, x, rng, wrong_scale=True), {}, e.LG1, e.DG1,
                       e.TH1, e.PH1, e.X1, 1))
    samplers = [("sampler: correct softmax guide", s.CAT, s.PH_M, s.X_M),
                ("sampler: correct 1-d Gaussian guide", s.DG1, s.PH_1, s.X_1),
                ("sampler: ignores φ", s.IgnoresPhi(4, loc=15.0, scale=10.0), s.PH_M, s.X_M),
                ("sampler: K copies of one draw", s.Copies(4, loc=15.0, scale=10.0), s.PH_M, s.X_M),
                ("sampler: one datapoint's particles reused", s.Reused(4, loc=15.0, scale=10.0), s.PH_M, s.X_M),
                ("sampler: wrong scale s² ε", s.WrongScale(1, 2), s.PH_1, s.X_1)]
    rows = []
    for name, kind, fn, extra, model, guide, th, ph, x, K in stochastic:
        fails, start = 0, time.perf_counter()
        for seed in range(seeds):
            fails += not endtoend.check_stochastic(fn, kind, model, guide, th, ph, x, K=K, replicates=replicates,
                                                   seed=1000 + seed, **extra).ok
        rows.append((name, fails, (time.perf_counter() - start) / seeds))
        if progress:
            print(f"  {name}: {fails}/{seeds}", file=sys.stderr, flush=True)
    for name, guide, phi, x in samplers:
        fails, start = 0, time.perf_counter()
        for seed in range(seeds):
            fails += not sampling.check_guide_sampler(guide, phi, x, seed=1000 + seed).ok
        rows.append((name, fails, (time.perf_counter() - start) / seeds))
        if progress:
            print(f"  {name}: {fails}/{seeds}", file=sys.stderr, flush=True)
    print(f"{'implementation':<58}{'failed':>10}{'s/check':>10}")
    for name, fails, seconds in rows:
        print(f"{name:<58}{f'{fails}/{seeds}':>10}{seconds:>10.2f}")
    path = ROOT / "docs" / "figures" / "end_to_end.json"           # the measurement docs/checking.md quotes
    path.write_text(json.dumps({"seeds": seeds, "replicates": replicates,
                                "rows": [{"implementation": n, "failed": f, "seconds_per_check": s}
                                         for n, f, s in rows]}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50, help="seeds per implementation (default 50)")
    parser.add_argument("--replicates", type=int, default=1000, help="runs per stochastic check (default 1000)")
    args = parser.parse_args()
    main(args.seeds, args.replicates)
