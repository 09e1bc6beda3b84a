"""One RWS step — particles, wake-θ and wake-φ — in rws_ref and in its peers, timed in one run.

Run:  python benchmarks/step.py [--json FILE]     (one BLAS thread, float64)

The step on the linear-Gaussian model (dz, dx, N, K) = (2, 3, 10, 5),
(20, 20, 100, 10), (20, 20, 1000, 100):

- rws_ref:  ``guide.sample`` + ``rws_ref.wake_step`` (validation included);
- numpy:    the same arithmetic hand-vectorized in plain NumPy, no validation
            (the floor a reference can hope for);
- pyro:     ``pyro.infer.ReweightedWakeSleep(...).loss_and_grads`` on the same
            model and guide (vectorized particles), if torch and pyro import;
- jax:      a ``jax.jit``-compiled step of the same math (``jax.grad`` of the
            surrogates with stopped weights), if jax imports.

Peers are never dependencies of rws_ref: ``benchmarks/run.py --peers`` makes
its own virtual environment for them (benchmarks/.peers-venv) and runs this
script there.  Times are the best of 7 repeats; ratios come from the same run.
"""
import argparse
import json
import os
import timeit

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

import rws_ref  # noqa: E402

SIZES = [(2, 3, 10, 5), (20, 20, 100, 10), (20, 20, 1000, 100)]
LOG_2PI = float(np.log(2 * np.pi))


def best(fn):
    timer = timeit.Timer(fn)
    number = max(1, int(0.2 / max(timer.timeit(1), 1e-7)))
    return min(timer.repeat(repeat=7, number=number)) / number


def problem(dz, dx, n, seed=0):
    rng = np.random.default_rng(seed)
    model, guide = rws_ref.LinearGaussian(dz, dx), rws_ref.DiagonalGaussianGuide(dz, dx)
    theta, phi = model.init_theta(rng), guide.init_phi(rng)
    return model, guide, theta, phi, model.sample(theta, n, rng)[1]


def rws_ref_step(model, guide, theta, phi, x, K):
    rng = np.random.default_rng(1)
    return lambda: rws_ref.wake_step(model, guide, theta, phi, x, guide.sample(phi, x, K, rng))


def numpy_step(theta, phi, x, K):
    """The same step written as one would by hand: no validation, no protocol."""
    rng = np.random.default_rng(1)
    mu, W, b, log_sigma = theta["mu"], theta["W"], theta["b"], theta["log_sigma"]
    A, c, log_s = phi["A"], phi["c"], phi["log_s"]
    n, dx = x.shape
    dz = mu.shape[0]

    def step():
        s = np.exp(log_s)
        eps = rng.standard_normal((K, n, dz))
        z = x @ A.T + c + s * eps
        z2 = z.reshape(-1, dz)
        r = (x - (z2 @ W.T).reshape(K, n, dx) - b).reshape(-1, dx)
        inv_var = np.exp(-2 * log_sigma)
        d = z2 - mu
        log_w = (-0.5 * ((d * d).sum(1) + (r * r) @ inv_var - (eps * eps).reshape(-1, dz).sum(1))
                 - log_sigma.sum() + log_s.sum() - 0.5 * dx * LOG_2PI).reshape(K, n)
        w = np.exp(log_w - log_w.max(0))
        w = (w / w.sum(0) / n).reshape(-1)
        u = r * w[:, None]
        g_theta = {"mu": w @ d, "W": inv_var[:, None] * (u.T @ z2), "b": inv_var * u.sum(0),
                   "log_sigma": inv_var * np.einsum("ij,ij->j", u, r) - w.sum()}
        e = (s * eps).reshape(-1, dz)
        we = (e * w[:, None]).reshape(K, n, dz).sum(0)
        inv_s2 = np.exp(-2 * log_s)
        g_phi = {"A": -inv_s2[:, None] * (we.T @ x), "c": -inv_s2 * we.sum(0),
                 "log_s": -(inv_s2 * np.einsum("ij,ij->j", e * w[:, None], e) - w.sum())}
        return g_theta, g_phi
    return step


def pyro_step(theta, phi, x, K):
    import pyro
    import pyro.distributions as dist
    import torch
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    pyro.clear_param_store()
    xt = torch.tensor(x)
    n = x.shape[0]

    def model(xs):
        mu = pyro.param("mu", torch.tensor(theta["mu"]))
        W = pyro.param("W", torch.tensor(theta["W"]))
        b = pyro.param("b", torch.tensor(theta["b"]))
        log_sigma = pyro.param("log_sigma", torch.tensor(theta["log_sigma"]))
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(mu, 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ W.T + b, log_sigma.exp()).to_event(1), obs=xs)

    def guide(xs):
        A = pyro.param("A", torch.tensor(phi["A"]))
        c = pyro.param("c", torch.tensor(phi["c"]))
        log_s = pyro.param("log_s", torch.tensor(phi["log_s"]))
        with pyro.plate("data", n):
            pyro.sample("z", dist.Normal(xs @ A.T + c, log_s.exp()).to_event(1))

    rws = pyro.infer.ReweightedWakeSleep(num_particles=K, vectorize_particles=True, max_plate_nesting=1,
                                         insomnia=1.0)
    params = None

    def step():
        nonlocal params
        rws.loss_and_grads(model, guide, xt)
        params = params or [p for _, p in pyro.get_param_store().named_parameters()]
        for p in params:
            p.grad = None
    return step


def jax_step(theta, phi, x, K):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    th = {k: jnp.asarray(v) for k, v in theta.items()}
    ph = {k: jnp.asarray(v) for k, v in phi.items()}
    xj = jnp.asarray(x)
    n, dz = x.shape[0], theta["mu"].shape[0]

    def log_p(t, z):
        r = xj - z @ t["W"].T - t["b"]
        return (-0.5 * jnp.sum((z - t["mu"]) ** 2, -1) - 0.5 * jnp.sum(r ** 2 * jnp.exp(-2 * t["log_sigma"]), -1)
                - jnp.sum(t["log_sigma"]))

    def log_q(p, z):
        e = z - xj @ p["A"].T - p["c"]
        return -0.5 * jnp.sum(e ** 2 * jnp.exp(-2 * p["log_s"]), -1) - jnp.sum(p["log_s"])

    @jax.jit
    def step(t, p, key):
        z = jax.lax.stop_gradient(xj @ p["A"].T + p["c"] + jnp.exp(p["log_s"])
                                  * jax.random.normal(key, (K, n, dz)))
        w = jax.lax.stop_gradient(jax.nn.softmax(log_p(t, z) - log_q(p, z), axis=0)) / n
        g_t = jax.grad(lambda tt: jnp.sum(w * log_p(tt, z)))(t)
        g_p = jax.grad(lambda pp: -jnp.sum(w * log_q(pp, z)))(p)
        return g_t, g_p

    key = jax.random.PRNGKey(0)
    jax.block_until_ready(step(th, ph, key))
    return lambda: jax.block_until_ready(step(th, ph, key))


def measure():
    rows = []
    for dz, dx, n, K in SIZES:
        model, guide, theta, phi, x = problem(dz, dx, n)
        row = {"size": [dz, dx, n, K], "rws_ref": best(rws_ref_step(model, guide, theta, phi, x, K)),
               "numpy": best(numpy_step(theta, phi, x, K))}
        for name, make in (("pyro", pyro_step), ("jax", jax_step)):
            try:
                row[name] = best(make(theta, phi, x, K))
            except ImportError:
                row[name] = None
        rows.append(row)
    return rows


def check_numpy_step_agrees():
    """The hand-vectorized step is the same math: equal to rws_ref on the same noise."""
    model, guide, theta, phi, x = problem(3, 4, 5)
    g_theta, g_phi = numpy_step(theta, phi, x, 6)()
    z = guide.sample(phi, x, 6, np.random.default_rng(1))
    _, r_theta, r_phi = rws_ref.wake_step(model, guide, theta, phi, x, z)
    for mine, ref in ((g_theta, r_theta), (g_phi, r_phi)):
        for key in ref:
            np.testing.assert_allclose(mine[key], ref[key], rtol=1e-10, atol=1e-12)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    check_numpy_step_agrees()
    rows = measure()
    for row in rows:
        cells = ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in row.items() if k != "size" and v is not None)
        print(tuple(row["size"]), cells)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle)
