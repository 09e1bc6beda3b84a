"""A Gaussian mixture and its inference network in plain PyTorch, written here the way RWS research code
is written (nn.Modules, one-hot latents drawn with torch.distributions.OneHotCategorical, log weights of
shape [batch, particles], one loss function per update) — the shape of the paper authors' GMM code, not
their code.  ``bug=`` plants a realistic mistake in a loss."""
import torch
from torch import nn

C, SCALE = 4, 2.0


class Model(nn.Module):
    """p(z) = softmax(logits), p(x | z) = N(x; 3·index(z), SCALE²), z one-hot."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([0.3, -0.2, 0.1, 0.0]))
        self.locs = 3.0 * torch.arange(C, dtype=torch.float64)

    def prior(self):
        return torch.distributions.OneHotCategorical(logits=self.logits)

    def log_prob(self, latent, obs):                   # latent [..., batch, C], obs [batch] -> [..., batch]
        obs_dist = torch.distributions.Normal(torch.sum(self.locs * latent, -1), SCALE)
        return self.prior().log_prob(latent) + obs_dist.log_prob(obs)

    def sample(self, num_samples):
        latent = self.prior().sample((num_samples,))
        return latent, torch.distributions.Normal(torch.sum(self.locs * latent, -1), SCALE).sample()


class Guide(nn.Module):
    """q(z | x) = OneHotCategorical(softmax(mlp(x)))."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.mlp = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, C))

    def dist(self, obs):
        return torch.distributions.OneHotCategorical(logits=self.mlp(obs.unsqueeze(-1)))

    def log_prob(self, latent, obs):
        return self.dist(obs).log_prob(latent)

    def sample(self, obs, num_particles):
        return self.dist(obs).sample((num_particles,))


def log_weight_and_log_q(model, guide, obs, num_particles, bug=None):
    """[batch, particles] log weights and log q of particles drawn from q (bug "prior proposal": drawn from the
    model's prior instead, but weighted as if from q)."""
    q = guide.dist(obs)
    if bug == "prior proposal":
        latent = model.prior().sample((num_particles, len(obs)))
    else:
        latent = q.sample((num_particles,))
    log_q = q.log_prob(latent).transpose(0, 1)
    return model.log_prob(latent, obs).transpose(0, 1) - log_q, log_q


def wake_theta_loss(model, guide, obs, num_particles):
    log_weight, _ = log_weight_and_log_q(model, guide, obs, num_particles)
    return -torch.mean(torch.logsumexp(log_weight, 1) - torch.log(torch.tensor(float(num_particles))))


def wake_phi_loss(model, guide, obs, num_particles, bug=None):
    log_weight, log_q = log_weight_and_log_q(model, guide, obs, num_particles, bug)
    weight = torch.softmax(log_weight if bug == "no detach" else log_weight.detach(), 1)
    return torch.mean(-torch.sum(weight * log_q, 1))


def sleep_phi_loss(model, guide, num_samples):
    latent, obs = model.sample(num_samples)
    return -torch.mean(guide.log_prob(latent, obs))
