"""A solution of rws-ref exercise train_step, written from the formula and rws_ref's estimators."""
import rws_ref


def train_step(model, guide, theta, phi, x, K, lr, rng):
    z = guide.sample(phi, x, K, rng)                              # one draw of particles, for both updates
    g_theta = rws_ref.wake_theta(model, guide, theta, phi, x, z)  # ascends the bound
    g_phi = rws_ref.wake_phi(model, guide, theta, phi, x, z)      # descends KL(p_θ(z|x) ‖ q_φ(z|x))
    return ({k: theta[k] + lr * g_theta[k] for k in theta},
            {k: phi[k] - lr * g_phi[k] for k in phi})
