"""What a check costs, in calls of the estimator it checks: every kind through check_estimator (defaults),
check_stochastic (default replicates, R), the exercise grader, and check_loss.

Each figure is (time of the check) / (time of one call of rws_ref's own estimator on the same pair, N = 5,
K = 5), both measured in this process: a ratio, so the machine's speed and load cancel out to first order.
check_stochastic is given as a multiple of R (its own R calls of the user's function, the exact moments, the
z-tests), first call and repeated call (the exact moments are cached per setting).

Run:  python benchmarks/check_cost.py [--repeat 3] [--write] [--before PATH]

``--before PATH`` also measures a checkout of an earlier rws_ref at PATH in a subprocess (e.g. a
``git worktree`` of the commit before issue 36), for the before/after table.  ``--write`` stores the table in
docs/figures/check_cost.json (docs/benchmarks.md renders it).
"""
import argparse
import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
KINDS = ("elbo_is", "wake_theta", "wake_phi", "sleep_phi", "insomnia", "defensive_wake_phi", "iwae_phi", "stl_phi",
         "iwae_dreg_phi", "rws_dreg_phi", "reinforce_phi", "vimco_phi")


def _pair(kind):
    import rws_ref
    from rws_ref import registry
    signature = registry.get(kind).signature
    if getattr(signature, "name", signature) == "noise":          # (a string in earlier versions)
        return rws_ref.LinearGaussian(2, 3), rws_ref.DiagonalGaussianGuide(2, 3)
    return rws_ref.GaussianMixture(4, scale=6.0), rws_ref.SoftmaxLinearGuide(4, loc=15.0, scale=10.0)


def _one_call(kind, model, guide):
    """Seconds of one call of rws_ref's estimator on N = 5, K = 5 (median of 1-second loops)."""
    from rws_ref import registry
    entry = registry.get(kind)
    rng = np.random.default_rng(0)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    draw = getattr(entry.signature, "draw", None)
    if draw is not None:
        case = draw(model, guide, theta, phi, rng, 5, 5)
        args = entry.signature.arguments(model, guide, case)
    else:                                                  # an rws_ref before the signature objects
        from rws_ref.properties import draw_case
        args = registry.arguments(entry, model, guide, draw_case(entry, model, guide, theta, phi, rng, 5, 5))
    times = []
    for _ in range(3):
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < 0.3:
            entry.function(*args)
            n += 1
        times.append((time.perf_counter() - start) / n)
    return float(np.median(times))


def measure_estimator(repeat):
    """{kind: calls-equivalent of check_estimator with its defaults} (median of ``repeat``)."""
    try:
        from rws_ref.checking import testing
    except ImportError:                                    # the flat layout of earlier versions
        from rws_ref import testing
    out = {}
    for kind in KINDS:
        model, guide = _pair(kind)
        one = _one_call(kind, model, guide)
        from rws_ref import registry
        fn = registry.get(kind).function
        seconds = []
        for _ in range(repeat):
            start = time.perf_counter()
            testing.check_estimator(fn, kind, model, guide)
            seconds.append(time.perf_counter() - start)
        out[kind] = {"calls": float(np.median(seconds) / one), "seconds": float(np.median(seconds)),
                     "one_call_ms": one * 1e3}
    return out


def measure_stochastic(repeat):
    """check_stochastic on the mixture (wake-φ, K = 3, default R): cost in units of R calls of the user's
    function (the same estimator, sampling included), first and repeated call."""
    import rws_ref
    from rws_ref.checking import endtoend
    model, guide = rws_ref.GaussianMixture(4, scale=6.0), rws_ref.SoftmaxLinearGuide(4, loc=15.0, scale=10.0)
    rng = np.random.default_rng(0)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    x = model.sample(theta, 2, rng)[1]

    def fn(theta, phi, x, rng):
        return rws_ref.wake_phi(model, guide, theta, phi, x, guide.sample(phi, x, 3, rng))
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 1.0:
        fn(theta, phi, x, np.random.default_rng(n))
        n += 1
    one = (time.perf_counter() - start) / n
    runs = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        report = endtoend.check_stochastic(fn, "wake_phi", model, guide, theta, phi, x, K=3, seed=i)
        runs.append(time.perf_counter() - start)
    R = report.replicates
    return {"replicates": R, "first": runs[0] / (R * one), "repeated": float(np.median(runs[1:]) / (R * one))}


def measure_grader(repeat):
    """rws-ref exercises check on a right solution, seconds (a child process where the grader uses one)."""
    import tempfile

    from rws_ref.cli import main
    body = ("import numpy as np\n\n\ndef wake_theta(model, guide, theta, phi, x, z):\n"
            "    log_w = model.log_joint(theta, z, x) - guide.log_prob(phi, z, x)\n"
            "    w = np.exp(log_w - log_w.max(axis=0))\n"
            "    return model.grad_log_joint(theta, z, x, w / w.sum(axis=0) / x.shape[0])\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "wake_theta.py")
        with open(path, "w") as handle:
            handle.write(body)
        seconds = []
        for _ in range(repeat):
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = main(["exercises", "check", "wake_theta", path])
            seconds.append(time.perf_counter() - start)
    return {"seconds": float(np.median(seconds)), "exit": code}


def main(repeat, write, before):
    table = {"after": {"check_estimator": measure_estimator(repeat), "check_stochastic": measure_stochastic(repeat),
                       "exercise_seconds": measure_grader(repeat)}}
    if before:
        env = dict(os.environ, PYTHONPATH=str(before))
        code = ("import json, sys; sys.path.insert(0, %r); import check_cost as c; "
                "print(json.dumps(c.measure_estimator(%d)))" % (str(ROOT / "benchmarks"), repeat))
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=before, capture_output=True, text=True,
                             check=True).stdout
        table["before"] = {"check_estimator": json.loads(out.strip().splitlines()[-1]), "path": str(before)}
    print(f"{'kind':<20}{'after: calls':>14}{'s':>8}" + (f"{'before: calls':>16}{'s':>8}" if before else ""))
    for kind in KINDS:
        a = table["after"]["check_estimator"][kind]
        line = f"{kind:<20}{a['calls']:>14,.0f}{a['seconds']:>8.2f}"
        if before:
            b = table["before"]["check_estimator"][kind]
            line += f"{b['calls']:>16,.0f}{b['seconds']:>8.2f}"
        print(line)
    s = table["after"]["check_stochastic"]
    print(f"check_stochastic (R = {s['replicates']}): {s['first']:.2f} × R calls first, {s['repeated']:.2f} × R "
          f"repeated; exercise check of a right solution: {table['after']['exercise_seconds']['seconds']:.2f} s")
    if write:
        path = ROOT / "docs" / "figures" / "check_cost.json"
        table["load"] = os.getloadavg()
        path.write_text(json.dumps(table, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--before", type=pathlib.Path, default=None, help="an earlier rws_ref checkout to compare")
    args = parser.parse_args()
    main(args.repeat, args.write, args.before)
