"""The docs stay true: the site's API reference covers every public name, the site's navigation holds every
page, and every page is in the course or the reference (the pages' examples are doctests of their own)."""
import importlib
import importlib.util
import inspect
import os
import re

import rws_ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return handle.read()


def test_the_api_reference_renders_the_module_of_every_public_name():
    modules = set(re.findall(r"^::: (rws_ref[\w.]*)$", _read("docs", "reference.md"), flags=re.M))
    for name in rws_ref.__all__:
        if name == "__version__":
            continue
        obj = getattr(rws_ref, name)
        if inspect.ismodule(obj):                          # a subpackage: its modules are rendered
            assert any(m.startswith(obj.__name__ + ".") or m == obj.__name__ for m in modules), name
            continue
        home = obj.__module__
        assert home in modules, f"rws_ref.{name} is defined in {home}, which docs/reference.md does not render"
    for module in modules:
        importlib.import_module(module)                    # a ::: line names a module that exists


def test_the_site_navigation_holds_every_page():
    nav = _read("mkdocs.yml")
    pages = {f for f in os.listdir(DOCS) if f.endswith(".md")}
    listed = set(re.findall(r":\s*([\w.-]+\.md)\s*$", nav, flags=re.M))
    assert pages == listed, f"in docs/ but not in mkdocs.yml: {sorted(pages - listed)}; " \
                            f"in mkdocs.yml but not in docs/: {sorted(listed - pages)}"


def test_every_doctest_block_is_shown_as_python_that_compiles():
    """The site shows the pages' doctest blocks without prompts (docs/hooks.py): each must still be Python."""
    spec = importlib.util.spec_from_file_location("docs_hooks", os.path.join(DOCS, "hooks.py"))
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    shown = 0
    for name in sorted(os.listdir(DOCS)):
        if name.endswith(".md"):
            for match in hooks.DOCTEST.finditer(_read("docs", name)):
                code = hooks.pasteable(match)[len("```python\n"):-len("```")]
                compile(code, f"{name}: block at {match.start()}", "exec")
                assert ">>> " not in code and "\n... " not in code
                shown += 1
    assert shown >= 10
