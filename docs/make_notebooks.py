"""The course's chapters as Jupyter notebooks, docs/notebooks/CHAPTER.ipynb: the prose as Markdown cells (the
formulas stay $…$, which Jupyter typesets), every example as a code cell — its prompts removed and its expected
output kept as a comment, as the site shows it (docs/hooks.py) — so a chapter runs cell by cell.

Run:  python docs/make_notebooks.py           write the notebooks (tests/test_docs.py checks they are current)
      python docs/make_notebooks.py --run     execute the notebooks in a Jupyter kernel and compare each cell's
                                              last output with the chapter's (nbclient, ipykernel: .ci/run does
                                              it in the documentation's environment)
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hooks  # noqa: E402  (docs/hooks.py: the doctest blocks as code that pastes)

#: the chapters of the course that hold examples, in the course's order
CHAPTERS = ("rws.md", "exact_oracle.md", "estimator_family.md", "linear_gaussian.md")
OUT = os.path.join(HERE, "notebooks")


def _lines(text):
    lines = text.strip("\n").split("\n")
    return [line + "\n" for line in lines[:-1]] + lines[-1:]


def notebook(markdown, chapter):
    """The notebook (a dict in the nbformat 4.5 layout) of one chapter's Markdown."""
    cells, last = [], 0
    head = (f"*This notebook is the chapter [{chapter}](../{chapter}) of the rws_ref course, generated from it by "
            f"docs/make_notebooks.py; it needs rws_ref installed (`pip install .` in a clone).*")
    parts = [("markdown", head)]
    for match in hooks.DOCTEST.finditer(markdown):
        parts.append(("markdown", markdown[last:match.start()]))
        code = hooks.pasteable(match)[len("```python\n"):-len("\n```")]
        parts.append(("code", code))
        last = match.end()
    parts.append(("markdown", markdown[last:]))
    for kind, text in parts:
        if not text.strip():
            continue
        cell = {"cell_type": kind, "id": f"cell-{len(cells)}", "metadata": {}, "source": _lines(text)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                        "name": "python3"},
                                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def render(chapter):
    """The text of docs/notebooks/CHAPTER.ipynb."""
    with open(os.path.join(HERE, chapter), encoding="utf-8") as handle:
        markdown = handle.read()
    return json.dumps(notebook(markdown, chapter), indent=1, ensure_ascii=False) + "\n"


def path_of(chapter):
    return os.path.join(OUT, re.sub(r"\.md$", ".ipynb", chapter))


def write():
    os.makedirs(OUT, exist_ok=True)
    for chapter in CHAPTERS:
        path = path_of(chapter)
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(render(chapter))
        os.replace(path + ".tmp", path)
        print(f"wrote {os.path.relpath(path)}")


def expected_last(source):
    """The output the chapter states for a cell's last statement (its "# → …" lines after the last line of code),
    or None when that statement shows nothing."""
    tail = []
    for line in reversed(source.rstrip("\n").split("\n")):
        if not line.startswith("# → "):
            break
        tail.insert(0, line[len("# → "):])
    return "\n".join(tail) if tail else None


def shown(cell):
    """What the executed cell shows: its printed text, then its last expression's value."""
    parts = [o.get("text", "") for o in cell.outputs if o.output_type == "stream"]
    parts += [o["data"].get("text/plain", "") for o in cell.outputs if o.output_type == "execute_result"]
    return "".join(parts).rstrip("\n")


def run():
    """Execute every notebook in a fresh Jupyter kernel: an error in a cell fails with its traceback, and a cell whose
    output differs from the one the chapter states fails naming the cell."""
    import nbformat
    from nbclient import NotebookClient
    failures = []
    for chapter in CHAPTERS:
        nb = nbformat.read(path_of(chapter), as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": HERE}}).execute()
        code = [c for c in nb.cells if c.cell_type == "code"]
        checked = 0
        for cell in code:
            want = expected_last(cell.source)
            if want is None:
                continue
            checked += 1
            if not shown(cell).endswith(want):
                failures.append(f"{chapter} {cell.id}: the chapter states {want!r}, the notebook shows {shown(cell)!r}")
        print(f"ran {os.path.relpath(path_of(chapter))}: {len(code)} code cells, no error; {checked} last outputs "
              f"as the chapter states them")
    if failures:
        sys.exit("\n".join(failures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="execute the notebooks instead (needs nbclient, ipykernel)")
    args = parser.parse_args()
    run() if args.run else write()
