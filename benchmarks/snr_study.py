"""The signal-to-noise study of Rainforth et al. (2018) on their Gaussian toy, with enough replicates
to fit every slope: IWAE θ (+½), IWAE φ (−½), STL, IWAE-DReG, RWS wake-φ and RWS-DReG.

Run:  python benchmarks/snr_study.py [--replicates 1000000] [--replicates-1000 200000] [--write | --table]

Setting: rws_ref.experiments.analysis.rainforth_toy (dimension 20, guide N(A x + c, 2/3 I) at A = I/2, c = μ/2
perturbed by N(0, 0.01²), one observation, seed 0); entries studied: the guide's bias c (φ) and the
prior mean μ (θ).  The replicates come B at a time from the estimators' closed forms on this toy
(rws_ref.experiments.analysis.rainforth_batched, checked against rws_ref's estimators in
tests/experiments/test_analysis.py);
SNRs and slopes with 95 % jackknife t-intervals over 50 groups (rws_ref.experiments.analysis.snr_study_batched).
K = 1000 gets fewer replicates: a replicate there costs about 1.2 ms.  A point enters the slopes only where
its SNR² is resolved and R ≥ 10/SNR² (rws_ref.experiments.analysis); every other point is listed with the
reason it was dropped.  Local slopes: one per segment between consecutive K, with its interval.  --write
stores the study in docs/figures/snr_study.json (from which docs/make_figures.py draws docs/figures/snr.png)
and its table in the marked block <!-- snr-table --> of docs/estimator_family.md; --table prints the table
of the stored study.
"""
import argparse
import json
import os
import re
import sys
import time

import numpy as np

from rws_ref.experiments import analysis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KS = (1, 10, 100, 1000)


def run(replicates, replicates_1000):
    rng = np.random.default_rng(0)
    toy = analysis.rainforth_toy(rng)
    counts = {K: (replicates_1000 if K == 1000 else replicates) for K in KS}
    start = time.perf_counter()
    study = analysis.snr_study_batched(analysis.rainforth_batched(*toy), KS, counts, rng, groups=50)
    seconds = time.perf_counter() - start
    return {"ks": list(KS), "replicates": {str(k): v for k, v in counts.items()}, "groups": 50, "level": 0.95,
            "seconds": seconds,
            "replicates_per_inverse_snr2": analysis.REPLICATES_PER_INVERSE_SNR2,
            "estimators": {name: {"snr": study.snr[name].tolist(), "snr_interval": study.snr_interval[name].tolist(),
                                  "resolved": study.resolved[name].tolist(), "dropped": study.dropped[name],
                                  "slope": _finite(study.slope[name]),
                                  "slope_interval": [_finite(v) for v in study.slope_interval[name]],
                                  "local_slope": [_finite(v) for v in study.local_slope[name]],
                                  "local_slope_interval": [[_finite(v) for v in pair]
                                                           for pair in study.local_slope_interval[name]]}
                           for name in study.snr}}, study


def _finite(value):
    return float(value) if np.isfinite(value) else None


def _signed(value, digits=3):
    return f"{value:+.{digits}f}".replace("-", "−")


def table(result):
    """The study as the markdown table of docs/estimator_family.md: SNR per K (parenthesized where the point
    is left out of the slopes), each local slope with its interval, the slope over the used K."""
    ks = result["ks"]
    head = ["estimator"] + [f"K={k}" for k in ks] + [f"local slope {a}→{b} [95%]" for a, b in zip(ks, ks[1:])]
    lines = ["| " + " | ".join(head + ["slope over the used K [95%]"]) + " |", "|" + "---|" * (len(head) + 1)]
    for name, e in result["estimators"].items():
        cells = [f"{v:#.4g}" if ok else f"({v:.2g})" for v, ok in zip(e["snr"], e["resolved"])]
        for v, (low, high) in zip(e["local_slope"], e["local_slope_interval"]):
            cells.append("—" if v is None else f"{_signed(v)} [{_signed(low)}, {_signed(high)}]")
        low, high = e["slope_interval"]
        cells.append("—" if e["slope"] is None else f"{_signed(e['slope'])} [{_signed(low)}, {_signed(high)}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes = [f"{name} at K = {k}: {reason}" for name, e in result["estimators"].items()
             for k, reason in zip(ks, e["dropped"]) if reason]
    return "\n".join(lines) + "\n\nLeft out of the slopes: " + "; ".join(notes) + "."


def write_table(result):
    page = os.path.join(ROOT, "docs", "estimator_family.md")
    text = open(page).read()
    if "<!-- snr-table -->" not in text:
        raise SystemExit("docs/estimator_family.md has no block <!-- snr-table --> … <!-- /snr-table -->")
    text = re.sub(r"(<!-- snr-table -->\n).*?(<!-- /snr-table -->)", lambda m: m.group(1) + table(result) + "\n"
                  + m.group(2), text, flags=re.S)
    with open(page + ".tmp", "w") as handle:
        handle.write(text)
    os.replace(page + ".tmp", page)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=1_000_000, help="replicates at K = 1, 10, 100")
    parser.add_argument("--replicates-1000", type=int, default=200_000, help="replicates at K = 1000")
    parser.add_argument("--write", action="store_true", help="write docs/figures/snr_study.json and the docs' table")
    parser.add_argument("--table", action="store_true", help="print the stored study's table and stop")
    args = parser.parse_args(argv)
    path = os.path.join(ROOT, "docs", "figures", "snr_study.json")
    if args.table:
        with open(path) as handle:
            print(table(json.load(handle)))
        return
    print(f"drawing {args.replicates:,} replicates at K = 1, 10, 100 and {args.replicates_1000:,} at K = 1000 "
          f"(about {args.replicates * 1.3e-4 + args.replicates_1000 * 1.24e-3:.0f} s on a quiet core) ...",
          file=sys.stderr, flush=True)
    result, study = run(args.replicates, args.replicates_1000)
    print(f"{result['seconds']:.0f} s; 95% jackknife t-intervals over 50 groups")
    print(study.table())
    if args.write:
        with open(path + ".tmp", "w") as handle:
            json.dump(result, handle, indent=1)
        os.replace(path + ".tmp", path)
        write_table(result)
        print("wrote", path, "and the table of docs/estimator_family.md")


if __name__ == "__main__":
    main()
