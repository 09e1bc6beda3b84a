"""Checkpoints of a training run: parameters, optimizer state, generator state, history.

A checkpoint is an .npz file without pickles (θ, φ and the optimizers' moments
as arrays) plus one JSON string (version, iteration, configuration, provenance,
generator state, history), written atomically (temporary file, fsync, rename).
:func:`load_checkpoint` reads it back and refuses, field by field, a file that
is truncated, tampered with or of another version; resuming restores all of it,
so an interrupted run continues bit-identically (rws_ref.train).
"""
import hashlib
import json
from dataclasses import asdict

import numpy as np

from .._io import atomic_write

__all__ = ["CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint", "config_json", "provenance"]

CHECKPOINT_VERSION = 2


def provenance(model, guide, data):
    """What determines the data and the parameter layout of a run, recorded in its checkpoints."""
    kind = lambda obj: f"{type(obj).__module__}.{type(obj).__qualname__}"    # noqa: E731
    return {"model": kind(model), "theta_shapes": {k: list(v) for k, v in model.theta_shapes.items()},
            "guide": kind(guide), "phi_shapes": {k: list(v) for k, v in guide.phi_shapes.items()},
            "data_shape": list(data.shape),
            "data_sha256": hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()}


def config_json(cfg):
    """A TrainConfig as a JSON object (tuples as lists), as checkpoints record it."""
    d = asdict(cfg)
    d["freeze"], d["tie"], d["lr_milestones"] = list(d["freeze"]), list(d["tie"]), list(d["lr_milestones"])
    return json.loads(json.dumps(d))


def save_checkpoint(path, run, theta, phi, history, iteration):
    """Write a checkpoint of ``run`` (a training run's fixed parts) at ``iteration``, atomically."""
    cfg, gen, opt_theta, opt_phi, provenance = run.cfg, run.gen, run.opt_theta, run.opt_phi, run.provenance
    arrays = {f"theta/{k}": v for k, v in theta.items()}
    arrays.update({f"phi/{k}": v for k, v in phi.items()})
    th_arrays, th_meta = opt_theta.state()
    ph_arrays, ph_meta = opt_phi.state()
    arrays.update({f"opt_theta/{k}": v for k, v in th_arrays.items()})
    arrays.update({f"opt_phi/{k}": v for k, v in ph_arrays.items()})
    meta = {"version": CHECKPOINT_VERSION, "iteration": iteration, "config": config_json(cfg),
            "provenance": provenance, "rng": gen.bit_generator.state, "opt_theta": th_meta,
            "opt_phi": ph_meta, "history": history}
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda handle: np.savez(handle, **arrays), binary=True)


def load_checkpoint(path):
    """Read a checkpoint written by :func:`train` (no code execution: npz without pickles).

    Returns
    -------
    dict with theta, phi, rng (generator state), opt_theta / opt_theta_meta,
    opt_phi / opt_phi_meta, history, iteration, config.

    Raises
    ------
    ValueError
        for a file that is missing, not an npz, or not an rws-ref checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path} does not exist") from None
    except Exception as err:
        raise ValueError(f"checkpoint {path} is not a readable .npz file ({type(err).__name__}: {err})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
        if not isinstance(meta, dict) or meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"version {meta.get('version') if isinstance(meta, dict) else meta!r}, "
                             f"expected {CHECKPOINT_VERSION}")
        _check_meta(meta)
        group = lambda prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        return {"theta": group("theta/"), "phi": group("phi/"), "rng": meta["rng"],
                "opt_theta": group("opt_theta/"), "opt_theta_meta": meta["opt_theta"],
                "opt_phi": group("opt_phi/"), "opt_phi_meta": meta["opt_phi"],
                "history": meta["history"], "iteration": meta["iteration"], "config": meta["config"],
                "provenance": meta["provenance"]}
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"checkpoint {path} is not an rws-ref checkpoint ({err})") from None


def _check_meta(meta):
    """The metadata of a checkpoint, field by field (a tampered or truncated file is refused)."""
    it = meta["iteration"]
    if isinstance(it, bool) or not isinstance(it, int) or it < 0:
        raise ValueError(f"iteration must be an integer >= 0; got {it!r}")
    for name in ("config", "provenance", "rng", "opt_theta", "opt_phi"):
        if not isinstance(meta[name], dict):
            raise ValueError(f"{name} must be a JSON object; got {type(meta[name]).__name__}")
    history = meta["history"]
    if not isinstance(history, list) or not all(
            isinstance(row, dict) and isinstance(row.get("iteration"), int) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in row.values()) for row in history):
        raise ValueError("history must be a list of rows of numbers, each with an integer iteration")
    if any(row["iteration"] > it for row in history):
        raise ValueError(f"history has rows after the checkpoint's iteration {it}")
