"""NumPyro programs as a NumPyro user writes them, for the bridge tests: the same densities as
tests/checking/bridges/pyro_programs.py (rws_ref's LinearGaussian(2, 3) with DiagonalGaussianGuide, and a
three-component Gaussian mixture with a categorical guide)."""
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

jax.config.update("jax_enable_x64", True)
DZ, DX, C = 2, 3, 3


def lg_model(x):
    mu = numpyro.param("mu", jnp.zeros(DZ))
    W = numpyro.param("W", jnp.zeros((DX, DZ)))
    b = numpyro.param("b", jnp.zeros(DX))
    log_sigma = numpyro.param("log_sigma", jnp.zeros(DX))
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(mu, 1.0).to_event(1))
        numpyro.sample("x", dist.Normal(z @ W.T + b, jnp.exp(log_sigma)).to_event(1), obs=x)


def lg_guide(x):
    A = numpyro.param("A", jnp.zeros((DZ, DX)))
    c = numpyro.param("c", jnp.zeros(DZ))
    log_s = numpyro.param("log_s", jnp.zeros(DZ))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.Normal(x @ A.T + c, jnp.exp(log_s)).to_event(1))


def mixture_model(x):
    logits = numpyro.param("logits", jnp.zeros(C))
    means = numpyro.param("means", jnp.array([-2.0, 0.0, 2.0]))
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Categorical(logits=logits))
        numpyro.sample("x", dist.Normal(means[z], 1.5), obs=x)


def mixture_guide(x):
    w = numpyro.param("w", jnp.zeros(C))
    b0 = numpyro.param("b0", jnp.zeros(C))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.Categorical(logits=x[..., None] * w + b0))


# -- several latent sites (the densities of pyro_programs.py's hier_* and mixed_*) -------------------
def hier_model(x):
    a = numpyro.param("a", 0.2)
    L = numpyro.param("L", jnp.zeros((2, C)))
    means = numpyro.param("means", jnp.array([-2.0, 0.0, 2.0]))
    with numpyro.plate("data", x.shape[0]):
        z1 = numpyro.sample("z1", dist.Bernoulli(logits=a))
        z2 = numpyro.sample("z2", dist.Categorical(logits=L[z1.astype(jnp.int32)]))
        numpyro.sample("x", dist.Normal(means[z2] + z1, 1.0), obs=x)


def hier_guide(x):
    u = numpyro.param("u", 0.3)
    V = numpyro.param("V", jnp.zeros((2, C)))
    r = numpyro.param("r", jnp.zeros(C))
    with numpyro.plate("data", x.shape[0]):
        z1 = numpyro.sample("z1", dist.Bernoulli(logits=u * x))
        numpyro.sample("z2", dist.Categorical(logits=V[z1.astype(jnp.int32)] + r * x[..., None]))


def mixed_model(x):
    logits = numpyro.param("logits", jnp.zeros(C))
    means = numpyro.param("means", jnp.array([-2.0, 0.0, 2.0]))
    with numpyro.plate("data", x.shape[0]):
        c = numpyro.sample("c", dist.Categorical(logits=logits))
        z = numpyro.sample("z", dist.Normal(means[c], 1.0))
        numpyro.sample("x", dist.Normal(z, 0.5), obs=x)


def mixed_guide(x):
    w = numpyro.param("w", jnp.zeros(C))
    b0 = numpyro.param("b0", jnp.zeros(C))
    k = numpyro.param("k", 0.8)
    m = numpyro.param("m", jnp.zeros(C))
    s = numpyro.param("s", -0.5)
    with numpyro.plate("data", x.shape[0]):
        c = numpyro.sample("c", dist.Categorical(logits=x[..., None] * w + b0))
        numpyro.sample("z", dist.Normal(k * x + m[c], jnp.exp(s)))
