"""Regenerate every figure in docs/figures from the package, byte for byte.

Run:  python docs/make_figures.py            (rewrite the figures)
      python docs/make_figures.py --check    (regenerate into a temporary folder and compare bytes)

docs/figures/snr.png is drawn from docs/figures/snr_study.json, which `python benchmarks/snr_study.py
--write` measures (about ten minutes).  docs/figures/le2019_gmm.png and le2019_gmm_full.png are made
by `rws-ref reproduce le2019-gmm` (docs/reproduce.md), bb2015_digits*.png by `rws-ref reproduce
bb2015-digits` (docs/digits.md), not here: they take hours.
"""
import filecmp
import json
import os
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rws_ref import GaussianMixture, MLPGuide  # noqa: E402
from rws_ref._io import atomic_write  # noqa: E402
from rws_ref.checking.audit import plot_bias_std  # noqa: E402
from rws_ref.experiments.train import TrainConfig, train  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")


def wake_versus_sleep(path):
    """Mixture with a misspecified model: θ frozen at uniform π, data only from
    components 0–4, a small guide (MLP with 2 hidden units). Sleep-φ fits the
    posterior where the *model* puts its x; wake-φ where the *data* are."""
    rng = np.random.default_rng(0)
    model = GaussianMixture()
    z = rng.integers(0, 5, 3000)
    x = model.means[z] + 5.0 * rng.standard_normal(3000)
    train_x, held_out = x[:-300], x[-300:]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method, style in (("wake", "o-"), ("sleep", "s--")):
        cfg = TrainConfig(method=method, K=10, iters=3000, batch_size=100, lr_theta=1e-3, lr_phi=0.03,
                          tol=0.0, eval_every=250, grad_replicates=0, freeze=("logits",), seed=1)
        result = train(model, MLPGuide(20, (2,), loc=95.0, scale=60.0), train_x, cfg,
                       theta={"logits": np.zeros(20)}, eval_data=held_out)
        ax.plot([h["iteration"] for h in result.history], [h["posterior_error"] for h in result.history],
                style, label=f"{method}-φ")
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean ‖q_φ(·|x) − p_θ(·|x)‖₂ on held-out data")
    ax.set_title("Data from components 0–4 only; model π uniform (fixed)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    save(fig, path)


def snr(path):
    """Drawn from docs/figures/snr_study.json, which benchmarks/snr_study.py --write measures (minutes)."""
    with open(os.path.join(HERE, "snr_study.json")) as handle:
        study = json.load(handle)
    ks = np.array(study["ks"])
    fig, ax = plt.subplots(figsize=(9.0, 4.2))
    for name, e in study["estimators"].items():
        ok, values, band = np.array(e["resolved"]), np.array(e["snr"]), np.array(e["snr_interval"])
        lo, hi = e["slope_interval"]
        label = f"{name}: slope {e['slope']:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        line, = ax.loglog(ks[ok], values[ok], "o-", label=label)
        ax.errorbar(ks[ok], values[ok], yerr=np.abs(band[ok].T - values[ok]), fmt="none", color=line.get_color())
        shown = ~ok & (values > 0)                               # left out of the slopes: open markers
        ax.loglog(ks[shown], values[shown], "o", mfc="none", color=line.get_color())
    r = study["replicates"]
    ax.set_xlabel("K")
    ax.set_ylabel("mean SNR over entries")
    ax.set_title(f"Rainforth et al. (2018) toy: {int(r['1']):,} replicates per K ({int(r['1000']):,} at K = 1000)\n"
                 "95% jackknife intervals; open markers: left out of the slopes (not resolved, or R < 10/SNR²)",
                 fontsize=8)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    save(fig, path)


def save(fig, path):
    """PNG without the software-version chunk, written atomically: same code, same bytes."""
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110, metadata={"Software": None}),
                 binary=True)
    plt.close(fig)


def make_all(folder):
    os.makedirs(folder, exist_ok=True)
    plot_bias_std(os.path.join(folder, "bias_std.png"))
    wake_versus_sleep(os.path.join(folder, "wake_vs_sleep.png"))
    snr(os.path.join(folder, "snr.png"))


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="regenerate into a temporary folder and compare bytes")
    args = parser.parse_args()
    print("drawing bias_std.png, wake_vs_sleep.png (training, about a minute) and snr.png ...", file=sys.stderr,
          flush=True)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            make_all(tmp)
            names = ("bias_std.png", "wake_vs_sleep.png", "snr.png")
            same = {n: filecmp.cmp(os.path.join(tmp, n), os.path.join(HERE, n), shallow=False) for n in names}
        print("\n".join(f"{n}: {'identical' if ok else 'DIFFERS'}" for n, ok in same.items()))
        sys.exit(0 if all(same.values()) else 1)
    make_all(HERE)
    print("figures written to", HERE)
