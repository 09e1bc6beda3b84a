"""Generate docs/api.md from the docstrings of every public name.

Run:  python docs/make_api.py        (tests/test_docs.py checks the file is current)
"""
import importlib
import inspect
import os

MODULES = ["rws_ref.protocol", "rws_ref.adapters", "rws_ref.diagnose", "rws_ref.reproduce", "rws_ref.estimators",
           "rws_ref.models.linear_gaussian",
           "rws_ref.models.linear_gaussian_exact", "rws_ref.models.gaussian_mixture",
           "rws_ref.models.sigmoid_belief_net", "rws_ref.exact.enumeration", "rws_ref.exact.laplace",
           "rws_ref.exact.targets", "rws_ref.family", "rws_ref.autodiff",
           "rws_ref.analysis", "rws_ref.train", "rws_ref.vectors", "rws_ref.testing", "rws_ref.numerics",
           "rws_ref.audit", "rws_ref.registry", "rws_ref.mistakes", "rws_ref.losses", "rws_ref.sampling",
           "rws_ref.endtoend", "rws_ref.runner", "rws_ref.exercises"]


def _summary(obj):
    doc = inspect.getdoc(obj) or "(no docstring)"
    return doc.split("\n\n")[0].replace("\n", " ")


def _signature(obj):
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def render():
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/make_api.py`; every public name of",
             "every module, with its signature and the first paragraph of its docstring.",
             "Signs: θ-gradients ascend the bound; RWS φ-gradients descend the inclusive KL;",
             "IWAE-type φ-gradients ascend the bound.", ""]
    for name in MODULES:
        module = importlib.import_module(name)
        lines += [f"## `{name}`", "", _summary(module), ""]
        for public in module.__all__:
            obj = getattr(module, public)
            if inspect.isclass(obj):
                lines.append(f"- **class `{public}{_signature(obj)}`** — {_summary(obj)}")
                for meth, member in inspect.getmembers(obj, inspect.isfunction):
                    # its own methods and those it inherits from rws_ref (the protocol's base classes)
                    if not meth.startswith("_") and member.__module__.startswith("rws_ref"):
                        lines.append(f"  - `{meth}{_signature(member)}` — {_summary(member)}")
            elif callable(obj):
                lines.append(f"- `{public}{_signature(obj)}` — {_summary(obj)}")
            elif isinstance(obj, str) and os.path.isabs(obj):
                root = os.path.dirname(os.path.dirname(importlib.import_module("rws_ref").__file__))
                lines.append(f"- `{public}` = `<install>/{os.path.relpath(obj, root)}`")
            elif isinstance(obj, dict):
                lines.append(f"- `{public}`: dict with keys {', '.join(f'`{k}`' for k in obj)}")
            else:
                lines.append(f"- `{public}` = `{obj!r}`")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    argparse.ArgumentParser(description=__doc__).parse_args()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "api.md")
    from rws_ref._io import atomic_write
    text = render()
    atomic_write(path, lambda handle: handle.write(text))
    print("wrote", path)
