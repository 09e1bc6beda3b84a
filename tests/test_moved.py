"""The two wings (rws_ref.checking, rws_ref.experiments) and the old flat import paths that keep working.

Each old path must give the very module object of the new one (a copy would have its own state: its
own registry of mistakes, its own Dask-pickled functions), and the core must import neither wing.
"""
import importlib
import subprocess
import sys

import pytest

from rws_ref import _moved


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_an_old_import_path_gives_the_same_module_as_the_new_one(old):
    if old in ("bridges.pyro", "bridges.numpyro"):
        pytest.importorskip(old.split(".")[1])                  # the bridges import their framework
    new = importlib.import_module(f"rws_ref.{_moved.MOVED[old]}")
    assert importlib.import_module(f"rws_ref.{old}") is new
    assert new.__name__ == new.__spec__.name == f"rws_ref.{_moved.MOVED[old]}"


def test_the_old_paths_work_in_every_import_form():
    code = ("from rws_ref import testing, diagnose\n"
            "import rws_ref.pytest_plugin, rws_ref.checking.testing as t\n"
            "from rws_ref.bridges.common import BridgeBase\n"
            "from rws_ref.train import TrainConfig\n"
            "import rws_ref\n"
            "assert testing is t and rws_ref.diagnose is diagnose and rws_ref.analysis.__name__.endswith('analysis')\n"
            "assert BridgeBase.__module__ == 'rws_ref.checking.bridges.common'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_core_imports_neither_wing():
    code = ("import sys, rws_ref, rws_ref.exact, rws_ref.registry, rws_ref.autodiff\n"
            "wings = sorted(m for m in sys.modules if m.startswith(('rws_ref.checking', 'rws_ref.experiments')))\n"
            "print(wings)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("wing,other", [("checking", "experiments"), ("experiments", "checking")])
def test_a_wing_does_not_import_the_other(wing, other):
    code = (f"import sys, pkgutil, importlib, rws_ref.{wing} as w\n"
            f"for m in pkgutil.walk_packages(w.__path__, 'rws_ref.{wing}.'):\n"
            "    if '.bridges.' not in m.name: importlib.import_module(m.name)\n"
            f"print(sorted(m for m in sys.modules if m.startswith('rws_ref.{other}')))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_the_old_attribute_of_an_unknown_name_is_a_clear_error():
    import rws_ref
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        rws_ref.nonsense


@pytest.mark.parametrize("module, old, new", [
    ("rws_ref.estimators", "forward_passes", "forward_pass"),
    ("rws_ref.models.linear_gaussian_exact", "check_pair", "check_closed_form_pair"),
    ("rws_ref.models.linear_gaussian_exact", "grad_kl_phi", "kl_grad_phi"),
    ("rws_ref.models.linear_gaussian", "grad_kl_phi", "kl_grad_phi"),
    ("rws_ref.experiments.le2019_gmm", "PAPER_METHODS", "PAPER_METHODS"),
])
def test_a_renamed_function_still_works_under_its_old_name_with_a_deprecation_warning(module, old, new):
    mod = importlib.import_module(module)
    if old == new:                                        # METHODS → PAPER_METHODS: the old name of a table
        old = "METHODS"
    with pytest.warns(DeprecationWarning, match=f"use {module}.{new}"):
        assert getattr(mod, old) is getattr(mod, new)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        getattr(mod, "nonsense")
