"""Language-neutral test vectors: fixed inputs and the numbers a correct RWS
implementation must produce from them.

``rws-ref vectors --out FILE.json`` (or :func:`write`) produces a versioned
JSON file; ``vectors.schema.json`` (shipped with the package) describes it and
:func:`load` reads it back with every tensor as a NumPy array.  A copy for the
default seed ships as ``rws_ref/checking/data/vectors.json``: ``load()`` with no path.

Conventions inside the file (also written into it, under "conventions"):

- tensors are nested lists in C order; particles z have shape (K, N, …),
  data x (N, …), log weights (K, N); mixture latents are integers;
- non-finite numbers are the strings "-inf" / "inf";
- gradients are dicts keyed like the parameters; θ-gradients ascend the
  bound, RWS φ-gradients descend the inclusive KL, IWAE-type φ-gradients
  ascend the bound; batch results are means over datapoints, weights are
  normalized per datapoint;
- "mistakes" holds what known wrong implementations of each estimator produce
  on the same inputs, so a mismatch can be diagnosed, not only detected.

Same version and seed give byte-identical files.
"""
import json
import os

import numpy as np

from .. import __version__, exact, family, registry
from .._checks import check_count
from .._io import atomic_write, check_output_path
from ..estimators import elbo_is, log_weights, normalized_weights
from ..models import (
    BENCHMARK_LOC,
    BENCHMARK_SCALE,
    BernoulliGuide,
    DiagonalGaussianGuide,
    GaussianMixture,
    LinearGaussian,
    MLPGuide,
    SigmoidBeliefNet,
    SoftmaxLinearGuide,
    benchmark_guide,
)
from ..models import linear_gaussian_exact as lg
from . import mistakes

__all__ = ["FORMAT_VERSION", "build", "write", "load", "schema", "DEFAULT_PATH", "SCHEMA_PATH",
           "make_model", "make_guide"]

FORMAT_VERSION = 3
#: the insomnia ι and defensive δ the cases record their outputs at
IOTA, DELTA = 0.3, 0.2
_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
DEFAULT_PATH = os.path.join(_DATA, "vectors.json")
SCHEMA_PATH = os.path.join(_DATA, "vectors.schema.json")

CONVENTIONS = {
    "shapes": "z (K, N, *z_shape), x (N, *x_shape), log weights (K, N); nested lists in C order",
    "non_finite": "the strings '-inf' and 'inf'",
    "signs": "theta-gradients ascend the bound; RWS phi-gradients (wake, sleep, insomnia, defensive, "
             "RWS-DReG) descend the inclusive KL; IWAE-type phi-gradients (IWAE, STL, IWAE-DReG, "
             "REINFORCE, VIMCO) ascend the bound",
    "batch": "weights normalized per datapoint over the K particles; estimates are means over datapoints",
    "exact": "exact means and variances over z ~ q^K by multiset enumeration (rws_ref.exact); "
             "variances are of the batch estimate",
    "tolerance": "each case's 'tolerance' holds for every output it records: an entry agrees when "
                 "|got - expected| <= atol + rtol * |expected|",
    "mistakes": "'mistakes' maps an estimator to what known wrong implementations produce on the same "
                "inputs (rws_ref.mistakes); rws_ref.diagnose.vectors(results) matches yours to them, and to "
                "each of them with a sign flip or a sum over the data on top",
    "estimators": "'estimators' is keyed by the name of rws_ref's function (rws_ref.registry): particle "
                  "estimators take x and z, reparameterized ones x and eps, sleep_phi the dreams "
                  "(dream_z, dream_x), insomnia both and iota, defensive_wake_phi x, z and delta",
}

#: agreement of another float64 implementation with the recorded outputs: rounding differences of
#: correct code stay orders of magnitude below it, a relative error of 1e-6 does not
TOLERANCE = {"rtol": 1e-9, "atol": 1e-11}


# -- encoding ------------------------------------------------------------------------------


def _encode(value):
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    arr = np.asarray(value)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64).tolist()
    if arr.dtype.kind == "f":
        if arr.ndim == 0:
            return _float(float(arr))
        return [_encode(v) for v in arr]
    if isinstance(value, str):
        return value
    raise TypeError(f"cannot encode {type(value).__name__}")


def _float(v):
    if np.isfinite(v):
        return v
    if np.isnan(v):
        raise ValueError("test vectors must not contain NaN")
    return "inf" if v > 0 else "-inf"


def _decode(value):
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, str):
        return {"inf": np.inf, "-inf": -np.inf}.get(value, value)
    if isinstance(value, list):
        if _is_numeric_tree(value):
            return np.array(_replace_strings(value), dtype=np.int64 if _all_ints(value) else np.float64)
        return [_decode(v) for v in value]
    return value


def _is_numeric_tree(value):
    if isinstance(value, list):
        return all(_is_numeric_tree(v) for v in value)
    return isinstance(value, (int, float)) or value in ("inf", "-inf")


def _all_ints(value):
    if isinstance(value, list):
        return all(_all_ints(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def _replace_strings(value):
    if isinstance(value, list):
        return [_replace_strings(v) for v in value]
    return {"inf": np.inf, "-inf": -np.inf}.get(value, value) if isinstance(value, str) else value


# -- model registry (so a file names its models in plain data) -------------------------------

_MODELS = {"LinearGaussian": LinearGaussian, "GaussianMixture": GaussianMixture,
           "SigmoidBeliefNet": SigmoidBeliefNet}
_GUIDES = {"DiagonalGaussianGuide": DiagonalGaussianGuide, "SoftmaxLinearGuide": SoftmaxLinearGuide,
           "MLPGuide": MLPGuide, "BernoulliGuide": BernoulliGuide}


def _from_spec(spec, table, what):
    if not isinstance(spec, dict) or not isinstance(spec.get("args"), dict):
        raise ValueError(f"{what} spec must be {{'class': name, 'args': {{...}}}}; got {spec!r}")
    if spec.get("class") not in table:
        raise ValueError(f"{what} spec names an unknown class {spec.get('class')!r}; known: {sorted(table)}")
    return table[spec["class"]], dict(spec["args"])


def make_model(spec):
    """The model a case names: ``{"class": "LinearGaussian", "args": {...}}``."""
    cls, args = _from_spec(spec, _MODELS, "model")
    return cls(**args)


def make_guide(spec):
    """The guide a case names, like :func:`make_model`."""
    cls, args = _from_spec(spec, _GUIDES, "guide")
    if "hidden" in args:
        args["hidden"] = tuple(args["hidden"])
    return cls(**args)


# -- the cases --------------------------------------------------------------------------------


def _record(case, model, guide, kinds):
    """The outputs of ``kinds`` (plus ELBO_IS) on the case's inputs, and what each known mistake
    (rws_ref.mistakes) of each of them produces there; a mistake equal to
    the right answer on these inputs (e.g. uniform weights at K = 1) is not recorded."""
    inputs = registry.Case(case["theta"], case["phi"], case["x"], case["z"], case.get("eps"), case["dream_z"],
                           case["dream_x"], case["iota"], case.get("delta"))
    log_w = log_weights(model, guide, inputs.theta, inputs.phi, inputs.x, inputs.z)
    case.update({"log_weights": log_w, "elbo_is": elbo_is(log_w), "normalized_weights": normalized_weights(log_w),
                 "estimators": {}, "mistakes": {}, "tolerance": dict(TOLERANCE)})
    for kind in ("elbo_is",) + tuple(kinds):
        entry = registry.get(kind)
        right = registry.reference_output(entry, model, guide, inputs)
        if kind != "elbo_is":
            case["estimators"][kind] = right
        made = {name: make(model, guide, inputs) for name, make in mistakes.base_mistakes(kind).items()}
        case["mistakes"][kind] = {name: value for name, value in made.items()
                                  if value is not None and _visible(value, right)}
    return case


def _visible(wrong, right):
    return any(np.any(np.abs(np.asarray(wrong[k]) - right[k]) > 1e3 * (TOLERANCE["atol"] + TOLERANCE["rtol"]
                                                                        * np.abs(right[k]))) for k in right)


def _spec(obj, **args):
    return {"class": type(obj).__name__, "args": args}


def _linear_gaussian_case(name, rng, K):
    model, guide = LinearGaussian(2, 3), DiagonalGaussianGuide(2, 3)
    theta = model.init_theta(rng)
    phi = {"A": 0.3 * rng.standard_normal((2, 3)), "c": 0.3 * rng.standard_normal(2),
           "log_s": np.array([0.2, -0.3])}
    x = model.sample(theta, 3, rng)[1]
    x[2] += 6.0                                   # an outlier: its weights are far below the others'
    eps = rng.standard_normal((K, 3, 2))
    z = guide.reparameterize(phi, x, eps)
    dream_z, dream_x = model.sample(theta, 4, rng)
    case = {"name": name, "model": _spec(model, dz=2, dx=3), "guide": _spec(guide, dz=2, dx=3),
            "theta": theta, "phi": phi, "x": x, "K": K, "eps": eps, "z": z,
            "dream_z": dream_z, "dream_x": dream_x, "iota": IOTA}
    _record(case, model, guide, ("wake_theta", "wake_phi", "sleep_phi", "insomnia", "iwae_phi", "stl_phi",
                                 "iwae_dreg_phi", "rws_dreg_phi"))
    m, S = model.posterior(theta, x)
    dth, dph = lg.grad_elbo1(model, guide, theta, phi, x)
    case["closed_form"] = {"log_marginal": model.log_marginal(theta, x), "posterior_mean": m,
                           "posterior_cov": S, "elbo1": lg.elbo1(model, guide, theta, phi, x),
                           "grad_elbo1_theta": dth, "grad_elbo1_phi": dph,
                           "kl_grad_phi": lg.kl_grad_phi(model, guide, theta, phi, x),
                           "sleep_target": lg.sleep_target(model, guide, theta, phi)}
    return case


def _discrete_case(name, model, guide, model_spec, guide_spec, theta, phi, x, K, rng, z=None):
    z = guide.sample(phi, x, K, rng) if z is None else z
    dream_z, dream_x = model.sample(theta, 4, rng)
    case = {"name": name, "model": model_spec, "guide": guide_spec, "theta": theta, "phi": phi, "x": x,
            "K": K, "z": z, "dream_z": dream_z, "dream_x": dream_x, "iota": IOTA, "delta": DELTA}
    kinds = ("wake_theta", "wake_phi", "sleep_phi", "insomnia", "defensive_wake_phi", "reinforce_phi")
    _record(case, model, guide, kinds + (("vimco_phi",) if K >= 2 else ()))
    dth, dph = exact.grad_elbo_is(model, guide, theta, phi, x, K)
    ex = {"K": K, "elbo_is": exact.elbo_is(model, guide, theta, phi, x, K),
          "grad_elbo_is_theta": dth, "grad_elbo_is_phi": dph,
          "kl_grad_phi": exact.kl_grad_phi(model, guide, theta, phi, x),
          "sleep_target": exact.sleep_target(model, guide, theta, phi),
          "log_marginal": model.log_marginal(theta, x), "posterior": model.posterior(theta, x),
          "moments": {}}
    for kind in ("wake_theta", "wake_phi", "reinforce_phi", "vimco_phi"):
        if K >= registry.get(kind).min_k:
            mean, var = exact.moments(registry.get(kind).function, model, guide, theta, phi, x, K)
            ex["moments"][kind] = {"mean": mean, "var": var}
    case["exact"] = ex
    return case


def build(seed=0):
    """All test-vector cases for ``seed``, as a JSON-ready dict."""
    seed = check_count(seed, "seed", minimum=0)
    rng = np.random.default_rng([seed, FORMAT_VERSION])
    cases = [_linear_gaussian_case("linear-gaussian K=4 with an outlier datapoint", rng, 4),
             _linear_gaussian_case("linear-gaussian K=1", rng, 1)]
    mix = GaussianMixture(5, scale=6.0)
    for label, guide, gspec in (
            ("softmax-linear", SoftmaxLinearGuide(5, loc=20.0, scale=10.0),
             {"class": "SoftmaxLinearGuide", "args": {"n_components": 5, "loc": 20.0, "scale": 10.0}}),
            ("mlp", MLPGuide(5, hidden=(3,), loc=20.0, scale=10.0),
             {"class": "MLPGuide", "args": {"n_components": 5, "hidden": [3], "loc": 20.0, "scale": 10.0}})):
        theta, phi = mix.init_theta(rng), guide.init_phi(rng)
        # each datapoint between two components, with particles on both: w̄ is not one-hot, so
        # every recorded mistake is visible (the particles are inputs; the exact moments do not use them)
        x = 0.5 * (mix.means[[1, 2]] + mix.means[[2, 3]]) + rng.standard_normal(2)
        z = np.array([[1, 2], [2, 3], [1, 3]])
        cases.append(_discrete_case(f"mixture C=5, {label} guide, K=3", mix, guide,
                                    {"class": "GaussianMixture", "args": {"n_components": 5, "scale": 6.0}},
                                    gspec, theta, phi, x, 3, rng, z=z))
    bench, mlp20 = GaussianMixture(), benchmark_guide()                                 # Le et al.'s benchmark
    x = 0.5 * (bench.means[[3, 11]] + bench.means[[4, 12]]) + rng.standard_normal(2)
    cases.append(_discrete_case("mixture C=20 (the benchmark), mlp guide 16-16, K=3", bench, mlp20,
                                {"class": "GaussianMixture", "args": {"n_components": 20}},
                                {"class": "MLPGuide", "args": {"n_components": 20, "hidden": [16, 16],
                                                               "loc": BENCHMARK_LOC, "scale": BENCHMARK_SCALE}},
                                bench.true_theta(), mlp20.init_phi(rng), x, 3, rng,
                                z=np.array([[3, 11], [4, 12], [3, 12]])))
    sbn, bern = SigmoidBeliefNet(3, 4), BernoulliGuide(3, 4)
    theta = {k: 3.0 * v for k, v in sbn.init_theta(rng).items()}        # large logits: weights spread widely
    phi = bern.init_phi(rng)
    x = sbn.sample(theta, 2, rng)[1]
    cases.append(_discrete_case("belief net 8 states, large logits, K=3", sbn, bern,
                                {"class": "SigmoidBeliefNet", "args": {"dz": 3, "dx": 4}},
                                {"class": "BernoulliGuide", "args": {"dz": 3, "dx": 4}},
                                theta, phi, x, 3, rng))
    log_w = np.array([[1e4, -1e4, 0.0], [1e4 - np.log(3.0), -1e4 + 1.0, -np.inf], [-1e4, -1e4 - 2.0, 2.0]])
    loo = np.array([[-1.0, 1e4], [-2.0, 1e4 - 5.0], [-0.5, -1e4], [-3.0, 3.0]])
    numerics = {"name": "log weights spread over ±1e4 with a zero-weight particle",
                "log_weights": log_w, "elbo_is": elbo_is(log_w), "normalized_weights": normalized_weights(log_w),
                "vimco_log_weights": loo, "vimco_signals": family.vimco_signals(loo),
                "vimco_elbo_is": elbo_is(loo)}
    return {"format": "rws_ref test vectors", "version": FORMAT_VERSION, "rws_ref_version": __version__,
            "seed": seed, "conventions": CONVENTIONS, "cases": cases, "numerics": [numerics]}


def write(path, seed=0, overwrite=True):
    """Write the vectors for ``seed`` to ``path`` (JSON, sorted keys; deterministic bytes),
    atomically; with ``overwrite=False`` an existing file is refused before any work."""
    path = check_output_path(path, "path", overwrite=overwrite)
    text = json.dumps(_encode(build(check_count(seed, "seed", minimum=0))), indent=1, sort_keys=True,
                      allow_nan=False)
    return atomic_write(path, lambda handle: handle.write(text + "\n"))


def schema():
    """The JSON Schema of the vectors file, as a dict."""
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        return json.load(handle)


def load(path=None):
    """Read a vectors file (default: the copy shipped with the package).

    Returns the same structure :func:`build` makes, every tensor a NumPy array
    (int64 for integer tensors, float64 otherwise, "-inf" decoded).

    Raises
    ------
    ValueError
        for a missing file, invalid JSON, a file that is not rws_ref test vectors of a
        supported version, or one that does not follow the schema (the field is named).
    """
    path = DEFAULT_PATH if path is None else path
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such vectors file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(raw, dict) or raw.get("format") != "rws_ref test vectors":
        raise ValueError(f"{path}: not an rws_ref test-vectors file")
    if raw.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {raw.get('version')!r}; this rws_ref reads {FORMAT_VERSION}")
    if path != DEFAULT_PATH:              # the shipped copy is checked against the schema by rws_ref's own tests
        _validate(path, raw)
    return _decode(raw)


_VALID = set()


def _validate(path, raw):
    """The file against the schema, once per version of the file in this process (it takes a second or two)."""
    import jsonschema
    info = os.stat(path)
    key = (os.path.realpath(path), info.st_size, info.st_mtime_ns)
    if key in _VALID:
        return
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(raw))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise ValueError(f"{path}: not a valid vectors file at {where}: {error.message}")
    _VALID.add(key)
