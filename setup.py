import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "rws_ref" / "__init__.py").read_text()).group(1)

setup(
    name="rws_ref",
    version=VERSION,
    description="Reference implementation of Reweighted Wake-Sleep in NumPy, "
                "with hand-derived gradients checked against closed forms and autograd",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["rws_ref", "rws_ref.*"]),
    package_data={"rws_ref.checking": ["data/*.json", "data/solutions/*.py"]},
    python_requires=">=3.9",
    # hypothesis draws the examples of rws_ref.checking.testing's checks; jsonschema validates a vectors file on load
    install_requires=["numpy>=1.22", "scipy>=1.8", "autograd>=1.6", "tqdm>=4.60", "matplotlib>=3.5",
                      "hypothesis>=6.50", "jsonschema>=4", "threadpoolctl>=3"],
    # the bridges (rws_ref.checking.bridges) are optional: the core never imports a framework
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3", "scikit-learn>=1.0"],
                    "data": ["scikit-learn>=1.0"],          # the digits of rws-ref reproduce bb2015-digits
                    "pyro": ["torch>=2.0", "pyro-ppl>=1.9"],
                    "torch": ["torch>=2.0"],
                    "jax": ["jax>=0.4.30", "jaxlib>=0.4.30"],
                    "numpyro": ["jax>=0.4.30", "jaxlib>=0.4.30", "numpyro>=0.15"],
                    "dask": ["dask[distributed]>=2024.1"],
                    # the site: mkdocs build --strict; docs/check_site.py also needs Debian's chromium
                    "docs": ["mkdocs>=1.6,<2", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26",
                             "pymdown-extensions>=10", "latex2mathml>=3.77", "selenium>=4.20",
                             "nbclient>=0.10", "ipykernel>=6"]},        # the chapters' notebooks, executed
    entry_points={"console_scripts": ["rws-ref=rws_ref.cli:main"],
                  "pytest11": ["rws_ref = rws_ref.checking.pytest_plugin"]},
    license="MIT",
)
