"""TensorFlow Probability (JAX substrate): check tfp.vi.csiszar_vimco against rws_ref's VIMCO through
the adapters — no bridge needed (docs/bridges.md).  csiszar_vimco draws from any object with
``sample(n, seed)`` and ``log_prob(z)``, so a small q that hands out rws_ref's particles forces them."""
import jax
import jax.numpy as jnp
import numpy as np
from tensorflow_probability.substrates import jax as tfp

from rws_ref.checking import adapters, testing

jax.config.update("jax_enable_x64", True)
C, SCALE = 3, 1.5


def log_joint(theta, z, x):                      # your model: softmax(logits)_z · N(x; means_z, SCALE²)
    resid = (x - theta["means"][z]) / SCALE
    return jax.nn.log_softmax(theta["logits"])[z] - 0.5 * resid ** 2 - jnp.log(SCALE * jnp.sqrt(2 * jnp.pi))


def log_prob(phi, z, x):                         # your guide: q(z|x) = softmax(w·x + b)
    return jnp.take_along_axis(jax.nn.log_softmax(phi["w"] * x[:, None] + phi["b"], -1),
                               jnp.moveaxis(z, 0, -1), -1).T.reshape(z.shape)


# -- the glue: rws_ref's particles into csiszar_vimco (14 lines) --------------------------------------
class ForcedQ:                                   # q_φ(·|x) that "samples" the given particles z (K, N)
    def __init__(self, phi, x, z):
        self.phi, self.x, self.z = phi, x, z

    def sample(self, sample_shape, seed=None):   # csiszar_vimco asks for (num_draws, num_batch_draws)
        return self.z.reshape(tuple(sample_shape[:1]) + (1,) * (len(sample_shape) - 1) + self.z.shape[1:])

    def log_prob(self, z):
        return log_prob(self.phi, z.reshape(self.z.shape), self.x).reshape(z.shape)


def vimco_loss(theta, phi, x, z):                # TFP's VIMCO surrogate, averaged over the data
    def surrogate(th, ph):
        return jnp.mean(tfp.vi.csiszar_vimco(lambda logu: -logu, lambda zz: log_joint(th, zz.reshape(z.shape), x)
                                             .reshape(zz.shape), ForcedQ(ph, x, z), num_draws=z.shape[0],
                                             seed=jax.random.PRNGKey(0)))
    value, (g_theta, g_phi) = jax.value_and_grad(surrogate, argnums=(0, 1))(theta, phi)
    return float(value), g_theta, g_phi
# -------------------------------------------------------------------------------------------------


def weighted_grad(f):                            # the adapters' gradients, by jax.grad
    g = jax.grad(lambda p, z, x, w: jnp.sum(w * f(p, z, x)))
    return lambda p, z, x, w: {k: np.asarray(v) for k, v in g(p, z, x, w).items()}


def sample(theta, n, rng):
    z = rng.choice(C, size=n, p=np.exp(theta["logits"]) / np.exp(theta["logits"]).sum())
    return z, theta["means"][z] + SCALE * rng.standard_normal(n)


model = adapters.Model({"logits": (C,), "means": (C,)}, (), (), lambda p, z, x: np.asarray(log_joint(p, z, x)),
                       weighted_grad(log_joint), sample=sample, z_domain=C, support=lambda: np.arange(C))
guide = adapters.Guide({"w": (C,), "b": (C,)}, (), (), lambda p, z, x: np.asarray(log_prob(p, z, x)),
                       weighted_grad(log_prob), z_domain=C)

if __name__ == "__main__":
    print(testing.check_loss(lambda th, ph, x, z: vimco_loss(th, ph, jnp.asarray(x), jnp.asarray(z, dtype=int)),
                             "vimco_phi", model, guide))
