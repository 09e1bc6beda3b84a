"""The docs stay true: the API reference is current and names every public name."""
import importlib.util
import os

import rws_ref

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def test_api_reference_is_generated_from_the_current_docstrings():
    spec = importlib.util.spec_from_file_location("make_api", os.path.join(DOCS, "make_api.py"))
    make_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_api)
    with open(os.path.join(DOCS, "api.md"), encoding="utf-8") as handle:
        assert handle.read() == make_api.render(), "docs/api.md is stale: run python docs/make_api.py"


def test_every_public_name_is_documented():
    with open(os.path.join(DOCS, "api.md"), encoding="utf-8") as handle:
        text = handle.read()
    for name in rws_ref.__all__:
        if name != "__version__":
            assert name in text, name
