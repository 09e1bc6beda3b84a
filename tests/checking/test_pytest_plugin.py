"""The pytest plugin: a user's test file checks an estimator in one line, and a failure's message
is the diagnosis."""
import subprocess
import sys
import textwrap


def test_the_rws_check_fixture_passes_a_correct_estimator_and_fails_with_the_diagnosis(tmp_path):
    (tmp_path / "test_user.py").write_text(textwrap.dedent('''
        import numpy as np
        import rws_ref

        MIX, CAT = rws_ref.GaussianMixture(4, scale=6.0), rws_ref.SoftmaxLinearGuide(4, loc=15.0, scale=10.0)

        def summed(model, guide, theta, phi, x, z):          # forgot the 1/N of the batch mean
            return {k: np.shape(x)[0] * v for k, v in rws_ref.wake_theta(model, guide, theta, phi, x, z).items()}

        def test_right(rws_check):
            rws_check(rws_ref.wake_theta, "wake_theta", MIX, CAT, max_examples=5)

        def test_wrong(rws_check):
            rws_check(summed, "wake_theta", MIX, CAT, max_examples=5)

        def test_misuse(rws_check):
            rws_check(summed, "wake_thetaa", MIX, CAT)

        def test_sleep(rws_check):
            rws_check(lambda phi, z, x: rws_ref.sleep_phi(CAT, phi, z, x), "sleep_phi", MIX, CAT, max_examples=5)
    '''))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n0", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    out = result.stdout
    assert "2 failed, 2 passed" in out, out[-3000:]
    assert "looks like: sum over data instead of the mean" in out
    assert "rws_check: kind must be one of elbo_is" in out                      # a misuse is one line
    assert "pytest_plugin.py" not in out and "testing.py" not in out            # rws_ref's frames are hidden
