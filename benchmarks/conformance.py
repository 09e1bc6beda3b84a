"""The conformance page: what each framework object computes in rws_ref's terms, on fixed particles.

Run:  python benchmarks/conformance.py [--out docs/conformance.md]

Installs the frameworks into benchmarks/.peers-venv (benchmarks/peers.py: PyTorch + Pyro, JAX +
NumPyro, TensorFlow Probability on JAX), runs the checks of benchmarks/conformance_cases.py there and
writes the page (to a temporary file, renamed into place): per object and estimator, what rws_ref's
check_loss found, the lines of user code the check took and its time.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import peers

ROOT = peers.ROOT

HEAD = """# Conformance: what the frameworks' objects compute, in rws_ref's terms

Produced by `python benchmarks/conformance.py` (it installs the frameworks into an environment of
its own). Each row is one check: the framework's object run on rws_ref's fixed particles through a
bridge ([bridges.md](bridges.md)) or, for TensorFlow Probability, through the adapters
([recipes/tfp_vimco_recipe.py](recipes/tfp_vimco_recipe.py)), its loss value and gradients read back
and compared with rws_ref's estimators by `rws_ref.checking.losses.check_loss` — which reports each part as a
multiple of rws_ref's quantity ("−N × wake-θ": a loss summed over the N datapoints, to minimize),
or the known mistake it matches. The model and guide are rws_ref's linear-Gaussian pair
(reparameterized guide) and a three-component Gaussian mixture with a categorical guide
(tests/checking/bridges/pyro_programs.py, numpyro_programs.py), N = 3 datapoints and K = 4 particles unless
the row says otherwise.

"Lines" counts the user code of the check (building the bridge and the object, the check call; for
TFP also the recipe's glue), not the model and guide; "time" is one check after a warm-up run.
"""

NOTES = """
## Reading the rows

- **Pyro's ReweightedWakeSleep** weights each whole program run: log w summed over the data plate,
  normalized over the K particles, no 1/N. It equals rws_ref's wake-θ and wake-φ only at N = 1; at
  N > 1 it is neither the per-datapoint estimator nor a multiple of it, and rws_ref names it as Pyro's
  documented convention (its documentation asks for no mini-batches), consistent with minimizing,
  not as a mistake. Its sleep loss sums over the dreams (N × sleep-φ). It refuses K = 1, and its guide
  must read `observations=` in the sleep phase: a guide that keeps scoring the data batch is caught
  (tests/checking/bridges/test_pyro.py).
- **RenyiELBO(α = 0)** in both frameworks keeps the data plate as a batch dimension: value, θ- and
  φ-gradients are −N × rws_ref's bound, wake-θ and IWAE-φ — with a reparameterized guide. With a
  discrete guide, Pyro's φ-gradient is exactly zero, and NumPyro's is the gradient at fixed particles
  alone (the score-function term is missing): read as RWS, it moves φ against wake-φ.
- **Trace_ELBO** (K = 1): with a reparameterized guide it is −N × IWAE-φ at K = 1. With a discrete
  guide Pyro's φ-gradient is −Σ_n log w_n ∇_φ log q(z_n|x_n): REINFORCE without the gradient at
  fixed particles, −∇_φ log q, whose mean is zero at K = 1 — unbiased there with a higher variance,
  and named as that variant, consistent (tests/checking/bridges/test_pyro.py checks it is exactly
  that). NumPyro's
  keeps only the gradient at fixed particles, as its RenyiELBO: its documentation says Trace_ELBO
  supports only reparameterized samplers, but it runs on a discrete guide without a warning.
- **Several latent sites** are one rws_ref latent ([bridges.md](bridges.md), "Several latent sites"):
  Pyro's ReweightedWakeSleep on a Bernoulli → categorical hierarchy and on a categorical choice with
  a Normal value is rws_ref's wake-θ and wake-φ at N = 1, as on one site. NumPyro's RenyiELBO on the
  two discrete sites keeps only the gradient at fixed particles, as on one.
- **Plain PyTorch** code in no framework: the loss draws its own particles with
  `torch.distributions`, and rws_ref's are forced into those draws (`plain_torch.Draws`); a
  wake-φ loss that averages over the data is 1 × wake-φ, a sleep loss that averages over its dreams
  1 × sleep-φ (each checked as a φ loss, `parts="phi"`: the training loop steps φ alone with it).
- **TFP's csiszar_vimco** with f(log u) = −log u works per datapoint; averaged over the data by the
  user, it is −1 × rws_ref's VIMCO-φ and its θ-gradient −1 × wake-θ. TFP's last release (0.25) does
  not import on JAX 0.10 (`jax.interpreters.xla.pytype_aval_mappings` is gone); its nightly does.
"""


def render(result):
    versions = result["versions"]
    lines = [HEAD, f"Measured with Python {result['python']}, " + ", ".join(f"{k} {v}" for k, v in versions.items())
             + f", on {result['machine']}.\n",
             "| framework | object | checked as | what rws_ref found | lines | time |",
             "|---|---|---|---|---:|---:|"]
    for row in result["rows"]:
        found = "<br>".join(row["findings"])
        lines.append(f"| {row['framework']} {row['version']} | {row['object']} | `{row['kind']}` | {found} | "
                     f"{row['lines']} | {row['seconds']:.2f} s |")
    return "\n".join(lines) + "\n" + NOTES


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "conformance.md"), help="the page to write")
    args = parser.parse_args()
    python = peers.python()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        subprocess.run([python, os.path.join(ROOT, "benchmarks", "conformance_cases.py"), "--json", out], check=True)
        with open(out) as handle:
            result = json.load(handle)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    tmp = args.out + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(render(result))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
