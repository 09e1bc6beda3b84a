"""Exercises graded by the oracle: write an estimator yourself, and rws_ref's checks grade it.

``rws-ref exercises list`` shows them in order, each with the section of the course it practises;
``rws-ref exercises start NAME FILE`` writes the template (the signature, the formula to implement,
what the model and guide offer — no solution); ``rws-ref exercises check NAME FILE`` grades your
function: exit status 0 when it is right, 1 with a hint when it is not — which entry, by how much,
the known mistake it looks like, and where in the course to look.

The grading has two stages.  First your function and rws_ref's run on the same fixed inputs (two
settings per exercise) and :func:`rws_ref.diagnose.compare` says where they differ and what the
difference looks like.  Then :func:`rws_ref.testing.check_estimator` tests the properties the
estimator must have on many drawn inputs (hypothesis), the exact mean against the exact oracle among
them.  Your function takes the arguments of rws_ref's function of the same name (the registry's
signature) and may use only the model's and guide's protocol methods (docs/protocol.md).
"""
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from .._io import atomic_write, check_output_path

__all__ = ["EXERCISES", "Exercise", "Grade", "template", "solution", "get", "command", "grade_isolated",
           "CALL_TIMEOUT", "GRADE_TIMEOUT"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: the function to write (rws_ref's of the same name), the course section it
    practises, and the formula the template states."""
    name: str
    section: str
    summary: str
    formula: str
    offers: str
    #: the discrete pair of the fixed inputs and the properties: "mixture" (a Gaussian mixture and a softmax
    #: guide) or "scene" (rws_ref.models.control_flow: latents whose number is itself random)
    discrete: str = "mixture"
    #: what grades it: "estimator" (the registry's kind of the same name, then check_estimator), "train" (one
    #: iteration of rws_ref.experiments.train) or "exact" (the exact oracle's mean)
    graded_by: str = "estimator"


_PARTICLES = ("model.log_joint(theta, z, x) -> (K, N); model.grad_log_joint(theta, z, x, weights) -> "
              "dict, ∇_θ Σ_kn weights·log p;\n    guide.log_prob(phi, z, x) -> (K, N); "
              "guide.grad_log_prob(phi, z, x, weights) -> dict, ∇_φ Σ_kn weights·log q")
_REPARAMETERIZED = ("eps: (K, N, *z_shape) base noise; guide.reparameterize(phi, x, eps) -> z; "
                    "model.grad_z_log_joint(theta, z, x),\n    guide.grad_z_log_prob(phi, z, x) -> (K, N, *z_shape); "
                    "guide.pull_back(phi, x, eps, v) -> dict, Σ_kn (∂z_kn/∂φ)ᵀ v_kn;\n    " + _PARTICLES)

EXERCISES = (
    Exercise("elbo_is", "docs/rws.md, 'The bound'",
             "the importance-sampled bound per datapoint",
             "L̂_n = log (1/K) Σ_k exp(log_w[k, n]), stable for log weights of any size (subtract the max)",
             "log_w: (K, N) array of log weights log p_θ(z_k, x_n) − log q_φ(z_k | x_n); return an (N,) array"),
    Exercise("wake_theta", "docs/rws.md, 'wake-θ: the gradient of the bound in θ'",
             "wake-θ, the gradient of the bound in θ (ascent)",
             "(1/N) Σ_n Σ_k w̄_kn ∇_θ log p_θ(z_kn, x_n),  w̄_kn = w_kn / Σ_j w_jn  (normalized per datapoint)",
             _PARTICLES),
    Exercise("wake_phi", "docs/rws.md, 'sleep-φ and wake-φ: two ways to fit the guide'",
             "wake-φ, a descent direction of KL(p_θ(z|x) ‖ q_φ(z|x))",
             "(1/N) Σ_n Σ_k w̄_kn (−∇_φ log q_φ(z_kn | x_n)),  w̄ normalized per datapoint, held fixed",
             _PARTICLES),
    Exercise("sleep_phi", "docs/rws.md, 'sleep-φ and wake-φ: two ways to fit the guide'",
             "sleep-φ on dreams (z_m, x_m) ~ p_θ, a descent direction",
             "(1/M) Σ_m (−∇_φ log q_φ(z_m | x_m))",
             "z: (M, *z_shape) dreamt latents, x: (M, *x_shape) dreamt data;\n    guide.log_prob(phi, z[None], x) "
             "-> (1, M); guide.grad_log_prob(phi, z[None], x, weights) -> dict (weights of shape (1, M))"),
    Exercise("iwae_phi", "docs/estimator_family.md, 'The estimator family around RWS' (IWAE, reparameterized)",
             "the reparameterized IWAE gradient in φ (ascent of the bound)",
             "(1/N) Σ_n Σ_k w̄_kn [ (∂z_kn/∂φ)ᵀ (∇_z log p_θ(z_kn, x_n) − ∇_z log q_φ(z_kn | x_n))\n"
             "                        − ∇_φ log q_φ(z_kn | x_n) at fixed z ],  z = reparameterize(φ, x, ε)",
             _REPARAMETERIZED),
    Exercise("vimco_phi", "docs/estimator_family.md, 'The estimator family around RWS' (VIMCO)",
             "VIMCO, the score-function gradient with leave-one-out baselines (ascent of the bound)",
             "(1/N) Σ_n Σ_k [ (L̂_n − L̂_{n,−k}) ∇_φ log q(z_kn|x_n) − w̄_kn ∇_φ log q(z_kn|x_n) ],\n"
             "    L̂_{n,−k}: L̂_n with w_kn replaced by the geometric mean of the other K − 1 weights",
             _PARTICLES),
    Exercise("reinforce_phi", "docs/control_flow.md, 'Why the reparameterization trick fails here'",
             "REINFORCE, the score-function gradient of the bound in φ (ascent), on a program whose number of "
             "latents is random",
             "(1/N) Σ_n Σ_k (L̂_n − w̄_kn) ∇_φ log q_φ(z_kn | x_n),  L̂_n = log (1/K) Σ_k w_kn:\n"
             "    the score-function term L̂_n Σ_k ∇_φ log q plus the gradient of L̂_n at fixed particles",
             _PARTICLES + ";\n    graded on LinearGaussian and on Scene1D, whose z = (n, p_1, …, p_n_max) is padded",
             discrete="scene"),
    Exercise("stl_phi", "docs/estimator_family.md, 'IWAE with reparameterized particles, STL and DReG'",
             "sticking the landing: the IWAE gradient without its score term (ascent; biased for K > 1)",
             "(1/N) Σ_n Σ_k w̄_kn (∂z_kn/∂φ)ᵀ (∇_z log p_θ(z_kn, x_n) − ∇_z log q_φ(z_kn | x_n)),  "
             "z = reparameterize(φ, x, ε)", _REPARAMETERIZED),
    Exercise("iwae_dreg_phi", "docs/estimator_family.md, 'IWAE with reparameterized particles, STL and DReG'",
             "IWAE-DReG: the IWAE gradient's mean with the score term reparameterized (ascent)",
             "(1/N) Σ_n Σ_k w̄_kn² (∂z_kn/∂φ)ᵀ (∇_z log p_θ(z_kn, x_n) − ∇_z log q_φ(z_kn | x_n))",
             _REPARAMETERIZED),
    Exercise("rws_dreg_phi", "docs/estimator_family.md, 'IWAE with reparameterized particles, STL and DReG'",
             "RWS-DReG: wake-φ's mean through the path derivative (a descent direction; zero at K = 1)",
             "−(1/N) Σ_n Σ_k (w̄_kn − w̄_kn²) (∂z_kn/∂φ)ᵀ (∇_z log p_θ(z_kn, x_n) − ∇_z log q_φ(z_kn | x_n))",
             _REPARAMETERIZED),
    Exercise("insomnia", "docs/estimator_family.md, 'Insomnia and defensive wake-φ'",
             "insomnia: ι·wake-φ + (1 − ι)·sleep-φ (a descent direction)",
             "ι (1/N) Σ_n Σ_k w̄_kn (−∇_φ log q_φ(z_kn | x_n)) + (1 − ι) (1/M) Σ_m (−∇_φ log q_φ(dream_z_m | "
             "dream_x_m))",
             _PARTICLES + ";\n    dream_z: (M, *z_shape), dream_x: (M, *x_shape) dreams from the model; iota: ι in "
             "[0, 1]"),
    Exercise("defensive_wake_phi", "docs/estimator_family.md, 'Insomnia and defensive wake-φ'",
             "defensive wake-φ: particles from (1 − δ) q_φ + δ r, weighted against that mixture (a descent "
             "direction)",
             "(1/N) Σ_n Σ_k w̄_kn (−∇_φ log q_φ(z_kn | x_n)),  w_kn = p_θ(z_kn, x_n) / ((1 − δ) q_φ(z_kn | x_n) + "
             "δ r(z_kn)),\n    r uniform over the model's states",
             _PARTICLES + ";\n    model.support() -> (S, *z_shape), the model's S states; delta: δ in [0, 1]"),
    Exercise("train_step", "docs/rws.md, 'The full algorithm'",
             "one iteration of RWS: particles from the guide, then a plain gradient step of θ along wake-θ and of "
             "φ against wake-φ",
             "z = guide.sample(phi, x, K, rng)  (one draw, used by both updates);\n"
             "    θ' = θ + lr · wake-θ(z),   φ' = φ − lr · wake-φ(z)   (wake-θ ascends the bound, wake-φ descends "
             "the KL)",
             "guide.sample(phi, x, K, rng) -> z (K, N, *z_shape); rws_ref.wake_theta and rws_ref.wake_phi "
             "(model, guide, theta, phi, x, z) -> dicts;\n    return new dicts (theta and phi are read-only)",
             graded_by="train"),
    Exercise("exact_mean", "docs/exact_oracle.md, 'The exact oracle: bias and variance with no Monte Carlo error'",
             "the exact mean of an estimator over its K particles, by enumerating the finite support",
             "E[ĝ] = Σ over particle tuples (s_1, …, s_K) of Π_k q_φ(s_k | x_n) · ĝ(…),  the particles of "
             "each datapoint independent;\n    ĝ a batch mean over the datapoints, so E[ĝ] = (1/N) Σ_n E[ĝ on "
             "datapoint n alone]",
             "estimator(model, guide, theta, phi, x, z) -> dict (z: (K, N, *z_shape)); model.support() -> "
             "(S, *z_shape) the states;\n    guide.log_prob(phi, z, x) -> (K, N)",
             graded_by="exact"),
)

_SIGNATURES = {"elbo_is": "log_w", "sleep_phi": "guide, phi, z, x", "iwae_phi": "model, guide, theta, phi, x, eps",
               "stl_phi": "model, guide, theta, phi, x, eps", "iwae_dreg_phi": "model, guide, theta, phi, x, eps",
               "rws_dreg_phi": "model, guide, theta, phi, x, eps",
               "insomnia": "model, guide, theta, phi, x, z, dream_z, dream_x, iota",
               "defensive_wake_phi": "model, guide, theta, phi, x, z, delta",
               "train_step": "model, guide, theta, phi, x, K, lr, rng",
               "exact_mean": "estimator, model, guide, theta, phi, x, K"}
_RETURNS = {"train_step": "(new θ, new φ), two dicts", "exact_mean": "dict keyed like the estimator's output"}


def get(name):
    """The exercise called ``name``, or a ValueError listing them."""
    for exercise in EXERCISES:
        if exercise.name == name:
            return exercise
    raise ValueError(f"no exercise {name!r}; the exercises: {', '.join(e.name for e in EXERCISES)}")


def template(name):
    """The text of the exercise's starting file: the signature, the formula, what you may call."""
    e = get(name)
    args = _SIGNATURES.get(name, "model, guide, theta, phi, x, z")
    from .. import registry  # (the exercises list stays importable without the numerics)
    returns = _RETURNS.get(name) or {"bound": "(N,) array", "phi": "dict keyed like φ",
                                     "theta": "dict keyed like θ"}[registry.get(name).output]
    return f'''"""Exercise {name}: {e.summary}.

Practises: {e.section}.
Grade it with:  rws-ref exercises check {name} THIS_FILE
"""
import numpy as np


def {name}({args}):
    """Return {e.summary}:

    {e.formula}

    What you have:
    {e.offers}

    Returns a {returns}, float64.
    """
    raise NotImplementedError("write {name} here")
'''


def solution(name):
    """The text of a solution of exercise ``name`` (rws_ref/checking/data/solutions/NAME.py), written from the
    formula and the protocol methods only, as a student would; the tests grade every one of them right."""
    get(name)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "solutions", f"{name}.py")
    with open(path, encoding="utf-8") as handle:
        return handle.read()


@dataclass
class Grade:
    """The grade: ``ok``, and the lines that say why (the hint on a failure)."""
    exercise: str
    ok: bool
    lines: list = field(default_factory=list)

    def __str__(self):
        head = f"{self.exercise}: {'right' if self.ok else 'not yet right'}"
        return "\n".join([head] + [f"  {line}" for line in self.lines])


#: seconds one call of the student's function may take, and the whole grading of one file
CALL_TIMEOUT = 10.0
GRADE_TIMEOUT = 120.0


def command(action, name=None, path=None):
    """``rws-ref exercises list | start NAME FILE | check NAME FILE | solution NAME``; returns the exit status."""
    if action == "list":
        for i, e in enumerate(EXERCISES, 1):
            print(f"{i}. {e.name:<18} {e.summary}\n   practises {e.section}")
        print("\nrws-ref exercises start NAME FILE writes a template; rws-ref exercises check NAME FILE grades it; "
              "rws-ref exercises solution NAME shows a solution (try first).")
        return 0
    get(name)
    if action == "solution":
        print(f"# rws-ref exercises solution {name}: one right answer of many; "
              f"rws-ref exercises check {name} FILE grades yours.\n")
        print(solution(name), end="")
        return 0
    if action == "start":
        check_output_path(path, "FILE", (".py",), overwrite=False)
        atomic_write(path, lambda handle: handle.write(template(name)))
        print(f"wrote the template of {name} to {path}; fill it in, then: rws-ref exercises check {name} {path}")
        return 0
    result = grade_isolated(name, path)
    print(result)
    return 0 if result.ok else 1


def grade_isolated(name, path, seconds=GRADE_TIMEOUT):
    """Grade in a child process with a working directory of its own (a fresh temporary folder), within
    ``seconds``: the student's code cannot touch the files beside it through relative paths, and its exit
    status is not the grade — the grade comes back through a pipe, so ``sys.exit(0)`` in the student's code
    grades nothing.  What the student's code prints is shown before the grade."""
    get(name)
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"FILE must be your Python file; {path!r} is not a file")
    read, write = os.pipe()
    with tempfile.TemporaryDirectory(prefix="rws_ref_grading_") as work:
        child = subprocess.Popen([sys.executable, "-m", "rws_ref.checking.grader", name, path, str(write)],
                                 cwd=work, pass_fds=(write,), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        os.close(write)
        try:
            out, err = child.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            os.close(read)
            return Grade(name, False, [f"grading did not finish within {seconds:g} s: an endless loop in your "
                                       f"file's module-level code or in your function?", f"see {get(name).section}"])
        with os.fdopen(read, "rb") as pipe:
            message = pipe.read()
    if out.strip():
        print(f"(your code printed:)\n{out.rstrip()}")
    if not message:
        tail = [line for line in err.strip().splitlines()[-6:] if line]
        return Grade(name, False, [f"your code ended the grading process (exit status {child.returncode}) before "
                                   f"it was graded: sys.exit or os._exit in your file or your function?", *tail,
                                   f"see {get(name).section}"])
    verdict = json.loads(message.decode("utf-8"))
    if "error" in verdict:                           # the grader's own refusal (a misuse), raised here
        raise ValueError(verdict["error"])
    return Grade(name, verdict["ok"], verdict["lines"])
