"""JAX: check your own wake-θ, on your own model, against rws_ref (docs/checking.md)."""
import jax
import jax.numpy as jnp
import numpy as np

from rws_ref.checking import adapters, testing

jax.config.update("jax_enable_x64", True)
C, SCALE = 3, 1.5


def log_joint(theta, z, x):                      # your model: softmax(logits)_z · N(x; means_z, SCALE²)
    resid = (x - theta["means"][z]) / SCALE
    return jax.nn.log_softmax(theta["logits"])[z] - 0.5 * resid ** 2 - jnp.log(SCALE * jnp.sqrt(2 * jnp.pi))


def log_prob(phi, z, x):                         # your guide: q(z|x) = softmax(w·x + b)
    return jax.nn.log_softmax(phi["w"] * x[:, None] + phi["b"], -1)[jnp.arange(len(x)), z]


def my_wake_theta(theta, phi, x, z):             # the RWS code under test
    w = jax.nn.softmax(jax.lax.stop_gradient(log_joint(theta, z, x) - log_prob(phi, z, x)), 0)
    g = jax.grad(lambda t: jnp.mean(jnp.sum(w * log_joint(t, z, x), 0)))(theta)
    return {k: np.asarray(v) for k, v in g.items()}


# -- the glue: NumPy in, NumPy out (11 lines) -----------------------------------------------------
def as_numpy(f):
    return lambda p, z, x: np.asarray(f(p, z, x))


def weighted_grad(f):                            # ∇ Σ weights · log density, by jax.grad
    g = jax.grad(lambda p, z, x, w: jnp.sum(w * f(p, z, x)))
    return lambda p, z, x, w: {k: np.asarray(v) for k, v in g(p, z, x, w).items()}


def sample(theta, n, rng):
    z = rng.choice(C, size=n, p=np.exp(theta["logits"]) / np.exp(theta["logits"]).sum())
    return z, theta["means"][z] + SCALE * rng.standard_normal(n)


model = adapters.Model({"logits": (C,), "means": (C,)}, (), (), as_numpy(log_joint), weighted_grad(log_joint),
                       sample=sample, z_domain=C, support=lambda: np.arange(C))
guide = adapters.Guide({"w": (C,), "b": (C,)}, (), (), as_numpy(log_prob), weighted_grad(log_prob), z_domain=C)
# -------------------------------------------------------------------------------------------------

if __name__ == "__main__":
    report = testing.check_estimator(my_wake_theta, "wake_theta", model, guide)
    print(report)
