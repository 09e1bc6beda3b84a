"""rws-ref exercises: every exercise grades a right solution as right (exit 0) and several wrong ones as not
right (exit 1) with a hint that names the mistake; the templates hold no solution; start never replaces a
file.  The solutions here are written as a student would, from the formulas and the protocol methods only."""
import re
import textwrap

import pytest

from rws_ref.checking import exercises, grader
from rws_ref.cli import main


def graded(name, path):
    """The grade of rws-ref exercises check, computed in this process (the command line runs the same grader in a
    child process of its own: tested below); returns (exit status, the printed grade)."""
    result = grader.grade(name, path)
    return (0 if result.ok else 1), str(result)

HEADER = ("import numpy as np\n\n\ndef softmax0(a):\n    e = np.exp(a - a.max(axis=0))\n"
          "    return e / e.sum(axis=0)\n\n\n")

#: the solutions rws-ref exercises solution NAME shows (rws_ref/checking/data/solutions), graded right below
SOLUTIONS = {e.name: exercises.solution(e.name) for e in exercises.EXERCISES}

# (exercise, the edit that plants the mistake, words the hint must hold)
MISTAKES = [
    ("elbo_is", ("m + np.log(np.mean(np.exp(log_w - m), axis=0))", "np.log(np.mean(np.exp(log_w), axis=0))"),
     "no max shift"),
    ("wake_theta", ("w = softmax0(model.log_joint(theta, z, x) - guide.log_prob(phi, z, x))",
                    "w = np.exp(model.log_joint(theta, z, x) - guide.log_prob(phi, z, x)); w = w / w.sum(axis=0)"),
     "no max shift"),
    ("elbo_is", ("np.mean(np.exp", "np.sum(np.exp"), "expected"),
    ("elbo_is", ("m + np.log", "np.log"), "expected"),
    ("wake_theta", ("w / x.shape[0]", "w"), "sum over data instead of the mean"),
    ("wake_theta", ("softmax0(model.log_joint(theta, z, x) - guide.log_prob(phi, z, x))",
                    "np.exp(model.log_joint(theta, z, x) - guide.log_prob(phi, z, x))"), "unnormalized weights"),
    ("wake_theta", ("return model.grad_log_joint(theta, z, x, w / x.shape[0])",
                    "return {k: -v for k, v in model.grad_log_joint(theta, z, x, w / x.shape[0]).items()}"),
     "sign flip"),
    ("wake_phi", ("return {k: -v", "return {k: v"), "sign flip"),
    ("wake_phi", ("softmax0(model.log_joint(theta, z, x) - guide.log_prob(phi, z, x))",
                  "np.full(z.shape[:2], 1.0 / z.shape[0])"), "uniform weights"),
    ("wake_phi", ("softmax0(model.log_joint(theta, z, x) - guide.log_prob(phi, z, x))",
                  "softmax0((model.log_joint(theta, z, x) - guide.log_prob(phi, z, x)).reshape(-1))"
                  ".reshape(z.shape[:2])"),
     "weights normalized over the whole batch"),
    ("sleep_phi", ("return {k: -v", "return {k: v"), "sign flip"),
    ("sleep_phi", ("np.full((1, m), 1.0 / m)", "np.ones((1, m))"), "sum over data instead of the mean"),
    ("iwae_phi", ("path[k] - score[k]", "path[k]"), "score term missing"),
    ("iwae_phi", ("path[k] - score[k]", "path[k] + score[k]"), "score term added instead of subtracted"),
    ("vimco_phi", ("signal - softmax0(log_w)", "signal"), "gradient at fixed particles missing"),
    ("reinforce_phi", ("(L - softmax0(log_w))", "(L + 0 * log_w)"), "gradient at fixed particles missing"),
    ("reinforce_phi", ("(L - softmax0(log_w)) / x.shape[0]", "(L - softmax0(log_w))"),
     "sum over data instead of the mean"),
    ("vimco_phi", ("return guide.grad_log_prob(phi, z, x, weights)",
                   "return {k: -v for k, v in guide.grad_log_prob(phi, z, x, weights).items()}"), "sign flip"),
    ("stl_phi", ("return guide.pull_back(phi, x, eps, v)", "return {k: g - s for (k, g), s in zip("
                 "guide.pull_back(phi, x, eps, v).items(), guide.grad_log_prob(phi, z, x, w).values())}"),
     "score term kept (the IWAE gradient)"),
    ("iwae_dreg_phi", ("coef = w ** 2 / x.shape[0]", "coef = w / x.shape[0]"), "w̃ instead of w̃² (STL)"),
    ("rws_dreg_phi", ("coef = -(w - w ** 2) / x.shape[0]", "coef = -(w ** 2) / x.shape[0]"),
     "w̃² instead of w̃ − w̃²"),
    ("rws_dreg_phi", ("coef = -(w - w ** 2)", "coef = (w - w ** 2)"), "sign flip"),
    ("insomnia", ("-(iota * wake[k] + (1 - iota) * sleep[k])", "-((1 - iota) * wake[k] + iota * sleep[k])"),
     "ι and 1 − ι swapped"),
    ("insomnia", ("-(iota * wake[k] + (1 - iota) * sleep[k])", "-(iota * iota * wake[k] + (1 - iota) * sleep[k])"),
     "ι applied twice to the wake term"),
    ("defensive_wake_phi", ("w = softmax0(model.log_joint(theta, z, x) - log_mix)",
                            "w = softmax0(model.log_joint(theta, z, x) - log_q)"),
     "weights p/q_φ instead of p/q_mix"),
    ("defensive_wake_phi", ("np.log1p(-delta) + log_q, np.log(delta) + log_r", "np.log(delta) + log_q, "
                            "np.log1p(-delta) + log_r"), "δ and 1 − δ swapped"),
    ("train_step", ("phi[k] - lr * g_phi[k]", "phi[k] + lr * g_phi[k]"), "φ stepped along wake-φ"),
    ("train_step", ("g_phi = rws_ref.wake_phi(model, guide, theta, phi, x, z)",
                    "g_phi = rws_ref.wake_phi(model, guide, theta, phi, x, guide.sample(phi, x, K, rng))"),
     "particles drawn again for the φ step"),
    ("train_step", ("theta[k] + lr * g_theta[k]", "theta[k] + lr * g_theta[k] / x.shape[0]"), "θ["),
    ("exact_mean", ("p = np.exp(np.sum(log_q[list(tup)]))", "p = len(states) ** -K"), "at K = 1: expected"),
    ("exact_mean", ("return {k: v / x.shape[0] for k, v in total.items()}", "return total"), "at K = 3: expected"),
]


def write(tmp_path, name, body):
    """``body`` in a file: a whole solution as it is, a bare function after HEADER (numpy and softmax0)."""
    path = tmp_path / f"{name}.py"
    path.write_text(body if body.startswith('"""') else HEADER + textwrap.dedent(body))
    return str(path)


@pytest.mark.parametrize("name", [e.name for e in exercises.EXERCISES])
def test_a_right_solution_is_graded_right(tmp_path, name):
    code, out = graded(name, write(tmp_path, name, SOLUTIONS[name]))
    assert code == 0 and f"{name}: right" in out, out
    if exercises.get(name).graded_by != "estimator":               # one training iteration, the exact oracle
        assert "agrees with" in out, out
        return
    count, names = re.search(r"passes (\d+) properties: (.*)", out).groups()
    assert int(count) == len(names.strip().split("; ")), out       # the count is the number of names listed


@pytest.mark.parametrize("name, edit, words", MISTAKES, ids=[f"{m[0]}-{m[2][:20]}" for m in MISTAKES])
def test_a_wrong_solution_gets_a_hint_naming_the_mistake_and_the_section(tmp_path, name, edit, words, capsys):
    old, new = edit
    assert old in SOLUTIONS[name]
    path = write(tmp_path, name, SOLUTIONS[name].replace(old, new))
    code, out = graded(name, path)
    assert code == 1 and f"{name}: not yet right" in out and words in out and exercises.get(name).section in out, out


def test_every_exercise_is_listed_in_order_with_its_section(capsys):
    assert main(["exercises", "list"]) == 0
    out = capsys.readouterr().out
    names = [e.name for e in exercises.EXERCISES]
    assert [out.index(f". {n} ") for n in names] == sorted(out.index(f". {n} ") for n in names)
    assert names[:6] == ["elbo_is", "wake_theta", "wake_phi", "sleep_phi", "iwae_phi", "vimco_phi"]


@pytest.mark.parametrize("name", [e.name for e in exercises.EXERCISES])
def test_a_template_holds_no_solution_and_grades_as_not_written(tmp_path, name, capsys):
    path = str(tmp_path / "mine.py")
    assert main(["exercises", "start", name, path]) == 0
    text = open(path).read()
    assert f"def {name}(" in text and 'raise NotImplementedError' in text and "return" not in text.split('"""')[-1]
    assert main(["exercises", "check", name, path]) == 1
    assert "not written yet" in capsys.readouterr().out


def test_the_train_step_exercise_is_graded_against_one_iteration_of_rws_refs_training():
    # the grader computes its reference without the experiments wing (the checking wing may not import it);
    # this pins that reference to what train does: one SGD iteration of method "wake" on the batch x
    import numpy as np

    import rws_ref
    from rws_ref.experiments.train import TrainConfig, train
    for model, guide in ((rws_ref.LinearGaussian(2, 3), rws_ref.DiagonalGaussianGuide(2, 3)),
                         (rws_ref.GaussianMixture(4, scale=6.0), rws_ref.SoftmaxLinearGuide(4, loc=15.0, scale=10.0))):
        rng = np.random.default_rng(1)
        theta, phi = model.init_theta(rng), guide.init_phi(rng)
        x = model.sample(theta, 3, rng)[1]
        config = TrainConfig(method="wake", optimizer="sgd", iters=1, batch_size=3, K=4, lr_theta=0.1, lr_phi=0.1,
                             eval_every=1, seed=5)
        run = train(model, guide, x, config, theta=theta, phi=phi, sample_data=lambda rng, n: x)
        want = grader.reference_step(model, guide, theta, phi, x, 4, 0.1, np.random.default_rng(5))
        for got, ref in ((run.theta, want[0]), (run.phi, want[1])):
            for k in ref:
                np.testing.assert_array_equal(got[k], ref[k])


def test_a_solution_is_shown_only_when_asked_and_is_the_one_graded_right(capsys):
    assert main(["exercises", "solution", "insomnia"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# rws-ref exercises solution insomnia: one right answer of many")
    assert SOLUTIONS["insomnia"] in out and "def insomnia(" in out
    assert main(["exercises", "list"]) == 0 and "def " not in capsys.readouterr().out          # never unasked
    assert main(["exercises", "solution", "no_such"]) == 2
    assert "no exercise 'no_such'" in capsys.readouterr().err


def test_start_never_replaces_a_file_and_check_names_what_is_missing(tmp_path, capsys):
    path = tmp_path / "mine.py"
    path.write_text("x = 1\n")
    assert main(["exercises", "start", "wake_theta", str(path)]) == 2
    assert path.read_text() == "x = 1\n"
    assert main(["exercises", "check", "wake_theta", str(path)]) == 2
    assert "must define a function wake_theta" in capsys.readouterr().err
    assert main(["exercises", "check", "no_such", str(path)]) == 2
    assert "no exercise 'no_such'" in capsys.readouterr().err


def test_a_crash_in_the_students_code_is_a_hint_with_their_line(tmp_path, capsys):
    path = write(tmp_path, "wake_theta", "def wake_theta(model, guide, theta, phi, x, z):\n    return 1 / 0\n")
    code, out = graded("wake_theta", path)
    assert code == 1
    assert "ZeroDivisionError" in out and "wake_theta.py" in out, out


# solutions right on the grader's fixed inputs (N = 3, K = 4, moderate log weights) that a property catches
_WAKE_THETA_BODY = """
        def wake_theta(model, guide, theta, phi, x, z):
            log_w = model.log_joint(theta, z, x) - guide.log_prob(phi, z, x)
            {edit}
            w = softmax0(log_w)
            return {{k: v * scale for k, v in model.grad_log_joint(theta, z, x, w / x.shape[0]).items()}}
"""
RIGHT_ON_THE_FIXED_INPUTS = [
    ("deterministic", "scale = 1.0 + 1e-13 * np.random.standard_normal()"),          # the global generator
    ("clipped log weights", "log_w = np.maximum(log_w, -60.0); scale = 1.0"),       # "against underflow"
    ("shift", "scale = 1.01 if 40.0 < log_w.max() < 500.0 else 1.0"),                  # a level-dependent slip
    ("agreement on one datapoint", "scale = 2.0 if x.shape[0] == 1 else 1.0"),
    ("agreement at one particle", "scale = 0.5 if z.shape[0] == 1 else 1.0"),
]


@pytest.mark.parametrize("what, edit", RIGHT_ON_THE_FIXED_INPUTS, ids=[r[0] for r in RIGHT_ON_THE_FIXED_INPUTS])
def test_a_solution_right_on_the_fixed_inputs_but_failing_a_property_is_not_right(tmp_path, what, edit, capsys):
    path = write(tmp_path, "wake_theta", _WAKE_THETA_BODY.format(edit=edit))
    code, out = graded("wake_theta", path)
    assert code == 1
    assert "right on the fixed inputs, but a property fails" in out, out



# -- the command line grades in a child process of its own (issue 32) -------------------------------------


def test_the_command_line_grades_a_right_solution_right_in_a_child_process(tmp_path, capsys):
    assert main(["exercises", "check", "wake_theta", write(tmp_path, "wake_theta", SOLUTIONS["wake_theta"])]) == 0
    assert "wake_theta: right" in capsys.readouterr().out


@pytest.mark.parametrize("body, words", [
    ("import sys\nsys.exit(0)\n", "ended the grading process (exit status 0)"),
    ("import rws_ref\ndef wake_theta(model, guide, theta, phi, x, z):\n"
     "    return rws_ref.wake_theta(model, guide, theta, phi, x, z)\n", "calls rws_ref's own wake_theta"),
    ("def wake_theta(model, guide, theta, phi, x, z)\n    return 1\n", "SyntaxError"),
    ("import os\ndef wake_theta(model, guide, theta, phi, x, z):\n    os._exit(0)\n", "exit status 0"),
], ids=["sys.exit(0) at import", "forwards to rws_ref", "a syntax error", "os._exit(0) in the function"])
def test_a_students_code_cannot_forge_the_grade(tmp_path, capsys, body, words):
    path = tmp_path / "wake_theta.py"
    path.write_text(body)
    assert main(["exercises", "check", "wake_theta", str(path)]) == 1
    out = capsys.readouterr().out
    assert "wake_theta: not yet right" in out and words in out, out


def test_a_students_code_runs_in_a_folder_of_its_own_and_an_endless_loop_is_stopped(tmp_path):
    mine = tmp_path / "notes.txt"
    mine.write_text("the student's own file")
    path = tmp_path / "wake_theta.py"
    path.write_text("import os\nfor f in os.listdir('.'):\n    os.remove(f)\nwhile True:\n    pass\n")
    result = exercises.grade_isolated("wake_theta", str(path), seconds=3.0)
    assert not result.ok and "did not finish within 3 s" in str(result)
    assert mine.read_text() == "the student's own file" and path.exists()       # nothing beside it touched
