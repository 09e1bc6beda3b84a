"""RWS code in plain JAX (jax.numpy and jax.random, no framework), written here as JAX users write it:
the densities of rws_ref's LinearGaussian(2, 3) with DiagonalGaussianGuide (a real latent drawn as
loc + scale · jax.random.normal noise) and of a three-component mixture with a categorical guide
(jax.random.categorical), so rws_ref's own models are the oracle; and the losses people write on them."""
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

jax.config.update("jax_enable_x64", True)
DZ, DX, C, SCALE = 2, 3, 3, 1.5
LOG_2PI = jnp.log(2 * jnp.pi)


def lg_log_joint(theta, z, x):
    """z ~ N(mu, I), x | z ~ N(W z + b, diag(exp(2 log_sigma)))."""
    r = x - z @ theta["W"].T - theta["b"]
    sigma = jnp.exp(theta["log_sigma"])
    return (-0.5 * jnp.sum((z - theta["mu"]) ** 2, -1) - 0.5 * jnp.sum((r / sigma) ** 2, -1)
            - jnp.sum(theta["log_sigma"]) - 0.5 * (DZ + DX) * LOG_2PI)


def lg_reparameterize(phi, x, eps):
    return x @ phi["A"].T + phi["c"] + jnp.exp(phi["log_s"]) * eps


def lg_log_prob(phi, z, x):
    eps = (z - x @ phi["A"].T - phi["c"]) / jnp.exp(phi["log_s"])
    return -0.5 * jnp.sum(eps ** 2, -1) - jnp.sum(phi["log_s"]) - 0.5 * DZ * LOG_2PI


def lg_iwae_loss(theta, phi, x, key, K=4):
    """−(1/N) Σ_n ELBO_IS: the reparameterized IWAE loss."""
    z = lg_reparameterize(phi, x, jax.random.normal(key, (K, x.shape[0], DZ)))
    log_w = lg_log_joint(theta, z, x) - lg_log_prob(phi, z, x)
    return -jnp.mean(logsumexp(log_w, 0) - jnp.log(K))


def lg_wake_phi_loss(theta, phi, x, key, K=4):
    """RWS wake-φ on a reparameterizable guide: the particles are drawn, then held fixed (stop_gradient)."""
    z = jax.lax.stop_gradient(lg_reparameterize(phi, x, jax.random.normal(key, (K, x.shape[0], DZ))))
    log_q = lg_log_prob(phi, z, x)
    w = jax.nn.softmax(jax.lax.stop_gradient(lg_log_joint(theta, z, x) - log_q), 0)
    return -jnp.mean(jnp.sum(w * log_q, 0))


def mixture_log_joint(theta, z, x):
    log_pi = jax.nn.log_softmax(theta["logits"])
    return log_pi[z] - 0.5 * ((x - theta["means"][z]) / SCALE) ** 2 - jnp.log(SCALE) - 0.5 * LOG_2PI


def mixture_logits(phi, x):
    return x[:, None] * phi["w"] + phi["b0"]


def mixture_log_prob(phi, z, x):
    log_q = jax.nn.log_softmax(mixture_logits(phi, x))                       # (N, C)
    return jnp.take_along_axis(jnp.broadcast_to(log_q, z.shape + (C,)), z[..., None], -1)[..., 0]


def mixture_sample_guide(phi, key, x, K):
    return jax.random.categorical(key, mixture_logits(phi, x), shape=(K, x.shape[0]))


def mixture_sample_model(theta, key, n):
    kz, kx = jax.random.split(key)
    z = jax.random.categorical(kz, theta["logits"], shape=(n,))
    return z, theta["means"][z] + SCALE * jax.random.normal(kx, (n,))


def mixture_rws_loss(theta, phi, x, key, K=4, bug=None):
    """θ loss + φ loss of RWS, each averaged over the data; ``bug`` plants a mistake."""
    z = mixture_sample_guide(phi, key, x, K)
    if bug == "uniform proposal":                  # drawn uniformly, weighted as if from q
        z = jax.random.categorical(key, jnp.zeros((x.shape[0], C)), shape=(K, x.shape[0]))
    log_p, log_q = mixture_log_joint(theta, z, x), mixture_log_prob(phi, z, x)
    log_w = log_p - jax.lax.stop_gradient(log_q)
    w = jax.nn.softmax(log_w if bug == "no stop_gradient" else jax.lax.stop_gradient(log_w), 0)
    if bug == "no stop_gradient":
        w = jax.nn.softmax(log_p - log_q, 0)
    theta_loss = -jnp.mean(logsumexp(log_w, 0) - jnp.log(K))
    return theta_loss - jnp.mean(jnp.sum(w * log_q, 0))
