"""The import paths of the modules that moved into the two wings, kept working.

rws_ref's checks of other people's code live in ``rws_ref.checking`` and its
experiments in ``rws_ref.experiments`` (docs/architecture.md).  Code written
against the flat layout — ``from rws_ref import testing``, ``import
rws_ref.diagnose``, ``-p rws_ref.pytest_plugin``, ``from rws_ref.bridges.pyro
import Bridge`` — keeps working: an old path gives the very module object of
the new one (one module, not a copy), imported only when asked for, so the
core still imports neither wing.
"""
import importlib
import importlib.abc
import importlib.util
import sys

#: old module path below rws_ref -> new one
MOVED = {
    **{name: f"checking.{name}" for name in (
        "adapters", "audit", "diagnose", "endtoend", "exercises", "limits", "losses", "mistakes", "properties",
        "pytest_plugin", "sampling", "testing", "vectors", "bridges", "bridges.common", "bridges.pyro",
        "bridges.numpyro")},
    **{name: f"experiments.{name}" for name in (
        "train", "optim", "checkpoints", "plots", "runner", "analysis")},
    "reproduce": "experiments.le2019_gmm",
    "digits": "experiments.bb2015_digits",
}


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import rws_ref.<old>`` returns the module ``rws_ref.<new>`` (both names in sys.modules)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith("rws_ref.") and fullname[len("rws_ref."):] in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def __init__(self):
        self._own_specs = {}

    def create_module(self, spec):
        module = importlib.import_module("rws_ref." + MOVED[spec.name[len("rws_ref."):]])
        self._own_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        """Nothing to run (the module ran under its new name); the import system set ``__spec__`` to the
        old path's, so the module's own is put back."""
        module.__spec__ = self._own_specs.pop(module.__spec__.name)


def install():
    """Put the finder first on sys.meta_path (once)."""
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.insert(0, _OldPaths())
