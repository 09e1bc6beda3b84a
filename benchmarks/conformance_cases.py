"""The checks behind docs/conformance.md, run in the peers' environment by benchmarks/conformance.py.

Each case is the code a user writes to check one framework object against rws_ref, given their
model and guide (tests/checking/bridges/*_programs.py: rws_ref's linear-Gaussian pair and a three-component
mixture with a categorical guide, written as that framework's users write them).  A case returns
rws_ref's report; its lines of user code are counted from its source (without the def line, the
docstring, comments and blank lines); its time is one run after a warm-up run.

Run:  python benchmarks/conformance_cases.py --json OUT   (in an environment with the frameworks)
"""
import argparse
import importlib.metadata
import inspect
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checking" / "bridges"))
sys.path.insert(0, str(ROOT / "docs" / "recipes"))

import numpy as np  # noqa: E402

MIX_X = np.array([-1.5, 0.2, 2.5])
LG_X = np.array([[0.3, -1.2, 0.8], [1.1, 0.4, -0.6], [-0.9, 0.2, 1.5]])


# -- Pyro ------------------------------------------------------------------------------------------
def pyro_rws_wake():
    """ReweightedWakeSleep(insomnia=1), N = 3 datapoints"""
    import pyro
    import pyro_programs as P

    from rws_ref.checking.bridges.pyro import Bridge
    bridge = Bridge(P.mixture_model, P.mixture_guide, MIX_X)
    elbo = pyro.infer.ReweightedWakeSleep(num_particles=4, max_plate_nesting=1)
    return bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "wake_phi")


def pyro_rws_wake_one_datapoint():
    """ReweightedWakeSleep(insomnia=1), N = 1"""
    import pyro
    import pyro_programs as P

    from rws_ref.checking.bridges.pyro import Bridge
    bridge = Bridge(P.mixture_model, P.mixture_guide, MIX_X[:1])
    elbo = pyro.infer.ReweightedWakeSleep(num_particles=4, max_plate_nesting=1)
    return bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "wake_phi",
                             x=MIX_X[:1])


def pyro_rws_sleep():
    """ReweightedWakeSleep(insomnia=0, model_has_params=False)"""
    import pyro
    import pyro_programs as P

    from rws_ref.checking.bridges.pyro import Bridge
    bridge = Bridge(P.mixture_model, P.mixture_guide, MIX_X)
    elbo = pyro.infer.ReweightedWakeSleep(num_particles=2, insomnia=0.0, model_has_params=False,
                                          num_sleep_particles=1, max_plate_nesting=1)
    return bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "sleep_phi")


def pyro_rws_insomnia():
    """ReweightedWakeSleep(insomnia=0.5), N = 1"""
    import pyro
    import pyro_programs as P

    from rws_ref.checking.bridges.pyro import Bridge
    bridge = Bridge(P.mixture_model, P.mixture_guide, MIX_X[:1])
    elbo = pyro.infer.ReweightedWakeSleep(num_particles=4, insomnia=0.5, num_sleep_particles=1, max_plate_nesting=1)
    return bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "insomnia",
                             x=MIX_X[:1], iota=0.5)


def pyro_renyi_reparameterized():
    """RenyiELBO(alpha=0), reparameterized guide"""
    import pyro
    import pyro_programs as P

    from rws_ref.checking.bridges.pyro import Bridge
    bridge = Bridge(P.lg_model, P.lg_guide, LG_X)
    elbo = pyro.infer.RenyiELBO(alpha=0.0, num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    return bridge.check_loss(lambda x: elbo.loss_and_grads(P.lg_model, P.lg_guide, x), "iwae_phi")


def pyro_renyi_discrete():
    """RenyiELBO(alpha=0), discrete guide"""
    import pyro
    import pyro_programs as P

    from rws_ref.checking.bridges.pyro import Bridge
    bridge = Bridge(P.mixture_model, P.mixture_guide, MIX_X)
    elbo = pyro.infer.RenyiELBO(alpha=0.0, num_particles=4, max_plate_nesting=1)
    return bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "reinforce_phi")


def pyro_trace_elbo_reparameterized():
    """Trace_ELBO, K = 1, reparameterized guide"""
    import pyro
    import pyro_programs as P

    from rws_ref.checking.bridges.pyro import Bridge
    bridge = Bridge(P.lg_model, P.lg_guide, LG_X)
    elbo = pyro.infer.Trace_ELBO(num_particles=1, max_plate_nesting=1)
    return bridge.check_loss(lambda x: elbo.loss_and_grads(P.lg_model, P.lg_guide, x), "iwae_phi", K=1)


def pyro_trace_elbo_discrete():
    """Trace_ELBO, K = 1, discrete guide"""
    import pyro
    import pyro_programs as P

    from rws_ref.checking.bridges.pyro import Bridge
    bridge = Bridge(P.mixture_model, P.mixture_guide, MIX_X)
    elbo = pyro.infer.Trace_ELBO(num_particles=1, max_plate_nesting=1)
    return bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixture_model, P.mixture_guide, x), "reinforce_phi",
                             K=1)


def pyro_rws_two_discrete_sites():
    """ReweightedWakeSleep on two latent sites z₁ → z₂ (Bernoulli, then categorical given z₁), N = 1"""
    import pyro
    import pyro_programs as P

    from rws_ref.checking.bridges.pyro import Bridge
    bridge = Bridge(P.hier_model, P.hier_guide, MIX_X[:1])
    elbo = pyro.infer.ReweightedWakeSleep(num_particles=4, max_plate_nesting=1)
    return bridge.check_loss(lambda x: elbo.loss_and_grads(P.hier_model, P.hier_guide, x), "wake_phi")


def pyro_rws_discrete_and_continuous():
    """ReweightedWakeSleep on a categorical choice c and a Normal value given c, N = 1"""
    import pyro
    import pyro_programs as P

    from rws_ref.checking.bridges.pyro import Bridge
    bridge = Bridge(P.mixed_model, P.mixed_guide, MIX_X[:1])
    elbo = pyro.infer.ReweightedWakeSleep(num_particles=4, max_plate_nesting=1)
    return bridge.check_loss(lambda x: elbo.loss_and_grads(P.mixed_model, P.mixed_guide, x), "wake_phi")


# -- NumPyro ---------------------------------------------------------------------------------------
def numpyro_renyi_reparameterized():
    """RenyiELBO(alpha=0), reparameterized guide"""
    import jax
    import numpyro_programs as P
    from numpyro.infer import RenyiELBO

    from rws_ref.checking.bridges.numpyro import Bridge
    bridge, elbo, key = Bridge(P.lg_model, P.lg_guide, LG_X), RenyiELBO(alpha=0.0, num_particles=4), \
        jax.random.PRNGKey(0)
    with Bridge.one_at_a_time(elbo):
        return bridge.check_loss(lambda p, x: elbo.loss(key, p, P.lg_model, P.lg_guide, x), "iwae_phi")


def numpyro_renyi_discrete():
    """RenyiELBO(alpha=0), discrete guide"""
    import jax
    import numpyro_programs as P
    from numpyro.infer import RenyiELBO

    from rws_ref.checking.bridges.numpyro import Bridge
    bridge, elbo, key = Bridge(P.mixture_model, P.mixture_guide, MIX_X), RenyiELBO(alpha=0.0, num_particles=4), \
        jax.random.PRNGKey(0)
    with Bridge.one_at_a_time(elbo):
        return bridge.check_loss(lambda p, x: elbo.loss(key, p, P.mixture_model, P.mixture_guide, x), "reinforce_phi")


def numpyro_renyi_discrete_as_rws():
    """RenyiELBO(alpha=0), discrete guide, read as wake-φ"""
    import jax
    import numpyro_programs as P
    from numpyro.infer import RenyiELBO

    from rws_ref.checking.bridges.numpyro import Bridge
    bridge, elbo, key = Bridge(P.mixture_model, P.mixture_guide, MIX_X), RenyiELBO(alpha=0.0, num_particles=4), \
        jax.random.PRNGKey(0)
    with Bridge.one_at_a_time(elbo):
        return bridge.check_loss(lambda p, x: elbo.loss(key, p, P.mixture_model, P.mixture_guide, x), "wake_phi")


def numpyro_trace_elbo_reparameterized():
    """Trace_ELBO, K = 1, reparameterized guide"""
    import jax
    import numpyro_programs as P
    from numpyro.infer import Trace_ELBO

    from rws_ref.checking.bridges.numpyro import Bridge
    bridge, elbo, key = Bridge(P.lg_model, P.lg_guide, LG_X), Trace_ELBO(num_particles=1), jax.random.PRNGKey(0)
    return bridge.check_loss(lambda p, x: elbo.loss(key, p, P.lg_model, P.lg_guide, x), "iwae_phi", K=1)


def numpyro_trace_elbo_discrete():
    """Trace_ELBO, K = 1, discrete guide"""
    import jax
    import numpyro_programs as P
    from numpyro.infer import Trace_ELBO

    from rws_ref.checking.bridges.numpyro import Bridge
    bridge, elbo, key = Bridge(P.mixture_model, P.mixture_guide, MIX_X), Trace_ELBO(num_particles=1), \
        jax.random.PRNGKey(0)
    return bridge.check_loss(lambda p, x: elbo.loss(key, p, P.mixture_model, P.mixture_guide, x), "reinforce_phi",
                             K=1)


def numpyro_renyi_two_discrete_sites():
    """RenyiELBO(alpha=0) on two latent sites z₁ → z₂ (Bernoulli, then categorical given z₁)"""
    import jax
    import numpyro_programs as P
    from numpyro.infer import RenyiELBO

    from rws_ref.checking.bridges.numpyro import Bridge
    bridge, elbo, key = Bridge(P.hier_model, P.hier_guide, MIX_X), RenyiELBO(alpha=0.0, num_particles=4), \
        jax.random.PRNGKey(0)
    with Bridge.one_at_a_time(elbo):
        return bridge.check_loss(lambda p, x: elbo.loss(key, p, P.hier_model, P.hier_guide, x), "reinforce_phi")


# -- plain PyTorch (no framework) ------------------------------------------------------------------
def torch_wake_phi_loss():
    """a hand-written wake-φ loss (nn.Modules, OneHotCategorical draws inside the loss; plain_torch_gmm.py)"""
    import plain_torch_gmm as G

    from rws_ref.checking.bridges.plain_torch import Bridge, one_hot
    model, guide = G.Model().double(), G.Guide().double()
    bridge = Bridge(model.log_prob, guide.log_prob, model, guide, MIX_X, latent=one_hot(G.C))
    return bridge.check_loss(lambda x: G.wake_phi_loss(model, guide, x, 4), "wake_phi", "phi")


def torch_sleep_loss():
    """a hand-written sleep-φ loss (dreams drawn from the model inside the loss; plain_torch_gmm.py)"""
    import plain_torch_gmm as G

    from rws_ref.checking.bridges.plain_torch import Bridge, one_hot
    model, guide = G.Model().double(), G.Guide().double()
    bridge = Bridge(model.log_prob, guide.log_prob, model, guide, MIX_X, latent=one_hot(G.C),
                    sample_model=model.sample)
    return bridge.check_loss(lambda x: G.sleep_phi_loss(model, guide, len(x)), "sleep_phi", "phi")


# -- TensorFlow Probability (JAX substrate), through the adapters ---------------------------------------
def tfp_csiszar_vimco():
    """tfp.vi.csiszar_vimco(f=−log u), averaged over the data (docs/recipes/tfp_vimco_recipe.py)"""
    import jax.numpy as jnp
    import tfp_vimco_recipe as r

    from rws_ref.checking import testing
    return testing.check_loss(lambda th, ph, x, z: r.vimco_loss(th, ph, jnp.asarray(x), jnp.asarray(z, dtype=int)),
                              "vimco_phi", r.model, r.guide)


CASES = [("Pyro", "pyro-ppl", pyro_rws_wake), ("Pyro", "pyro-ppl", pyro_rws_wake_one_datapoint),
         ("Pyro", "pyro-ppl", pyro_rws_sleep), ("Pyro", "pyro-ppl", pyro_rws_insomnia),
         ("Pyro", "pyro-ppl", pyro_renyi_reparameterized), ("Pyro", "pyro-ppl", pyro_renyi_discrete),
         ("Pyro", "pyro-ppl", pyro_trace_elbo_reparameterized), ("Pyro", "pyro-ppl", pyro_trace_elbo_discrete),
         ("Pyro", "pyro-ppl", pyro_rws_two_discrete_sites), ("Pyro", "pyro-ppl", pyro_rws_discrete_and_continuous),
         ("NumPyro", "numpyro", numpyro_renyi_reparameterized), ("NumPyro", "numpyro", numpyro_renyi_discrete),
         ("NumPyro", "numpyro", numpyro_renyi_discrete_as_rws),
         ("NumPyro", "numpyro", numpyro_trace_elbo_reparameterized),
         ("NumPyro", "numpyro", numpyro_trace_elbo_discrete),
         ("NumPyro", "numpyro", numpyro_renyi_two_discrete_sites),
         ("PyTorch", "torch", torch_wake_phi_loss), ("PyTorch", "torch", torch_sleep_loss),
         ("TFP (JAX)", "tfp-nightly", tfp_csiszar_vimco)]


def user_lines(fn):
    """Lines of user code in a case and in the glue it uses (the recipe's, for TFP)."""
    body = inspect.getsource(fn).splitlines()[1:]
    count = sum(1 for line in body if line.strip() and not line.strip().startswith(("#", '"""')))
    if fn is tfp_csiszar_vimco:
        text = (ROOT / "docs" / "recipes" / "tfp_vimco_recipe.py").read_text()
        start = text.index("# -- the glue")
        glue = text[start:text.index("# ----", start + 10)].splitlines()[1:]
        count += sum(1 for line in glue if line.strip() and not line.strip().startswith("#"))
    return count


def run():
    import torch
    torch.set_default_dtype(torch.float64)
    rows = []
    for framework, package, fn in CASES:
        import pyro
        pyro.clear_param_store()
        fn()                                          # warm-up: imports, JAX's compilation
        pyro.clear_param_store()
        start = time.perf_counter()
        report = fn()
        elapsed = time.perf_counter() - start
        rows.append({"framework": framework, "version": importlib.metadata.version(package),
                     "object": inspect.getdoc(fn), "kind": report.kind, "consistent": report.ok,
                     "findings": [p.text for p in report.parts], "lines": user_lines(fn), "seconds": elapsed})
        print(f"{framework:10s} {inspect.getdoc(fn):60s} {elapsed:6.2f} s", flush=True)
    versions = {p: importlib.metadata.version(p) for p in ("torch", "pyro-ppl", "jax", "numpyro", "tfp-nightly",
                                                             "numpy")}
    return {"rows": rows, "versions": versions, "python": sys.version.split()[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, help="where to write the rows")
    args = parser.parse_args()
    result = run()
    tmp = args.json + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(result, handle, indent=1)
    os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
