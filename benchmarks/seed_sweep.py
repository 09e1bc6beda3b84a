"""Run every statistical test under 30 different Monte Carlo seeds.

Run:  python benchmarks/seed_sweep.py [n_seeds]

Each statistical test (pytest marker "statistical") states a false-failure
probability of at most 1e-6; across 30 seeds and all of them, a correct
library should pass every run. Prints one line per seed and the count.
"""
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(n_seeds=30):
    passed, start = 0, time.perf_counter()
    for seed in range(1, n_seeds + 1):
        env = dict(os.environ, RWS_TEST_SEED=str(seed))
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "statistical", "-p", "no:cacheprovider",
                                 "tests"], cwd=ROOT, env=env, capture_output=True, text=True)
        summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-200:]
        print(f"seed {seed:2d}: {'pass' if result.returncode == 0 else 'FAIL'}  {summary}", flush=True)
        passed += result.returncode == 0
    print(f"{passed} of {n_seeds} seeds passed every statistical test ({time.perf_counter() - start:.0f} s)")
    return 0 if passed == n_seeds else 1


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n_seeds", nargs="?", type=int, default=30, help="seeds (default 30; one line each)")
    sys.exit(main(parser.parse_args().n_seeds))
