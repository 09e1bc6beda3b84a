"""Learning curves a reader can learn from (``rws-ref train --plot``)."""
import numpy as np

from .._io import atomic_write

__all__ = ["plot_history", "iteration_axis", "median_band", "save_png"]


_LABELS = {"elbo_is": "ELBO_IS (K particles)", "log_p": "log p_θ(x)", "pi_error": "‖π − π_true‖",
           "posterior_error": "‖q − p_θ(z|x)‖", "true_posterior_error": "‖q − p_true(z|x)‖",
           "grad_std_theta": "wake-θ", "grad_std_phi": "the method's φ-gradient"}


def plot_history(path, histories, title="", reference=None):
    """Learning curves a reader can learn from, written atomically to ``path`` (PNG).

    Panels: the bound and log p_θ(x) on the same axes over the whole run, its start included
    (the gap between them is the bound's looseness); each error on a log scale; and the
    standard deviation of the gradient estimators — the root mean square over parameter
    entries of each entry's standard deviation across ``grad_replicates`` independent draws
    of the particles at the evaluation point — on a log scale.  Every panel starts at iteration 0,
    so its first point is the value the run's summary prints as the start.

    Parameters
    ----------
    path : str, the PNG file
    histories : dict label -> history (the rows of :class:`TrainResult`); several runs share the axes
    title : str
    reference : dict label -> value, optional horizontal lines on the bound panel (e.g. the
        closed-form maximum likelihood)
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = {k for h in histories.values() for row in h for k in row}
    errors = [k for k in ("pi_error", "posterior_error", "true_posterior_error") if k in keys]
    errors += sorted(k for k in keys if k.endswith("_error") and k not in errors)
    spreads = [k for k in ("grad_std_theta", "grad_std_phi") if k in keys]
    panels = [("bound (nats per datapoint)", [k for k in ("elbo_is", "log_p") if k in keys], False)]
    panels += [("error", errors, True)] if errors else []
    panels += [("std of the gradient estimate\n(RMS over entries, across draws)", spreads, True)] if spreads else []
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    for ax, (ylabel, panel_keys, log) in zip(axes[0], panels):
        for label, history in histories.items():
            rows = list(history)
            its = [r["iteration"] for r in rows]
            for key in panel_keys:
                ax.plot(its, [r.get(key, np.nan) for r in rows], lw=1.3,
                        label=f"{_LABELS.get(key, key)}" + (f" — {label}" if len(histories) > 1 else ""))
        if log:
            ax.set_yscale("log")
        else:                                   # the whole run, its start and the reference lines included
            shown = [r[k] for h in histories.values() for r in h for k in panel_keys if k in r]
            shown += list((reference or {}).values())
            if shown:
                lo, hi = min(shown), max(shown)
                pad = 0.05 * (hi - lo) or 0.1
                ax.set_ylim(lo - pad, hi + pad)
        if reference and not log and panel_keys:
            for name, value in reference.items():
                ax.axhline(value, color="k", ls="--", lw=0.8, label=name)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.suptitle(title + (f" ({next(iter(histories))})" if len(histories) == 1 else ""), fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110), binary=True)
    plt.close(fig)


def iteration_axis(ax, first, iters):
    """An iteration axis that shows the start: linear up to the first evaluation ``first``, logarithmic after
    it, ticks at 0 and at the powers of ten past ``first`` (no "0" and "10¹" side by side)."""
    from matplotlib.ticker import FixedLocator, NullLocator
    ax.set_xscale("symlog", linthresh=first)
    ax.xaxis.set_major_locator(FixedLocator([0] + [10.0 ** e for e in range(int(np.ceil(np.log10(first))),
                                                                           int(np.log10(max(iters, 1))) + 1)]))
    ax.xaxis.set_minor_locator(NullLocator())


def median_band(ax, rows, key, label):
    """One method's curve over seeds on ``ax``: the median of ``key`` at each iteration of ``rows`` (the
    evaluation rows of its runs) with the 25–75 % band when the seeds differ.  Returns the lowest quartile."""
    its = sorted({r["iteration"] for r in rows})
    q = np.array([np.percentile([r[key] for r in rows if r["iteration"] == it], [25, 50, 75]) for it in its])
    line, = ax.plot(its, q[:, 1], label=label, lw=1.2)
    if np.any(q[:, 2] > q[:, 0]):
        ax.fill_between(its, q[:, 0], q[:, 2], color=line.get_color(), alpha=0.2, lw=0)
    return float(q[:, 0].min())


def save_png(fig, path):
    """``fig`` written atomically to ``path`` as a PNG (no timestamp: the same figure gives the same bytes)."""
    import matplotlib.pyplot as plt
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110, metadata={"Software": None}),
                 binary=True)
    plt.close(fig)
