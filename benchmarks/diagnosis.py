"""How well the check of a user's own model detects and names each mistake, and how often it cries wolf.

Run:  python benchmarks/diagnosis.py [--seeds 20]

On the three-cluster model of docs/recipes/autograd_recipe.py (not built into rws_ref), each
mistake of tests/checking/test_recipes.py written by hand in autograd.numpy is checked by two routes,
under many seeds:

- property route: ``testing.check_estimator`` (25 examples per property); detected when the
  report fails, named when the agreement's diagnosis names the mistake;
- direct route: ``diagnose.compare`` on one set of particles (K = 4, N = 3) drawn per seed.

False alarms: the correct implementation under the same seeds.  Prints a table and the time of one
check_estimator run.
"""
import argparse
import importlib.util
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "checking")]

from rws_ref.checking import diagnose, testing  # noqa: E402


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(seeds):
    r = _load(ROOT / "docs" / "recipes" / "autograd_recipe.py", "autograd_recipe")
    mistakes = _load(ROOT / "tests" / "checking" / "test_recipes.py", "test_recipes").MISTAKES
    entries = {"correct implementation": None, **{name: fn for name, fn in mistakes.items()}}
    print(f"{'implementation':<70}{'property: detected':>20}{'named':>8}{'direct: detected':>18}{'named':>8}")
    times = []
    for name, wrong in entries.items():
        fn = r.my_wake_theta if wrong is None else (lambda th, ph, x, z, w=wrong: w(r, th, ph, x, z))
        counts = [0, 0, 0, 0]
        for seed in range(seeds):
            start = time.perf_counter()
            report = testing.check_estimator(fn, "wake_theta", r.model, r.guide, seed=seed)
            times.append(time.perf_counter() - start)
            detail = next(p.detail for p in report.results if p.name == "agreement with rws_ref")
            counts[0] += not report.ok
            counts[1] += wrong is not None and f"looks like: {name}" in detail.split("generic example")[-1]
            rng = np.random.default_rng(seed)
            theta = {k: rng.standard_normal(s) for k, s in r.model.theta_shapes.items()}
            phi = {k: rng.standard_normal(s) for k, s in r.guide.phi_shapes.items()}
            x = r.sample(theta, 3, rng)[1]
            z = rng.integers(0, 3, (4, 3))
            verdict = diagnose.compare("wake_theta", fn(theta, phi, x, z), r.model, r.guide, theta, phi, x, z)
            counts[2] += not verdict.ok
            counts[3] += wrong is not None and verdict.mistake == name
        print(f"{name:<70}{counts[0]:>14}/{seeds:<5}{counts[1]:>8}{counts[2]:>12}/{seeds:<5}{counts[3]:>8}")
    print(f"one check_estimator run: median {np.median(times):.2f} s, max {np.max(times):.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    main(parser.parse_args().seeds)
