"""The frameworks rws_ref is compared with and checked against, in a virtual environment of their own
(benchmarks/.peers-venv): they are never dependencies of rws_ref.  Created on first use; packages
added to PEERS later are installed into an existing one."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "benchmarks", ".peers-venv")
PYTHON = os.path.join(VENV, "bin", "python")

# torch 2.13.0 is the CPU build on this machine's disk; TFP's last release (0.25) does not import on
# JAX 0.10, its nightly does.
PEERS = ["torch==2.13.0", "pyro-ppl==1.9.2", "jax", "jaxlib", "numpyro==0.22.0", "tfp-nightly==0.26.0.dev20261027"]


def python():
    """The peers' interpreter, the environment made or completed first."""
    if not os.path.exists(PYTHON):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "-q", *PEERS, "-e", ROOT], check=True)
    return PYTHON
