"""Bridges to probabilistic-programming frameworks: a user's model and guide, written as that
framework's users write them, as an rws_ref protocol model and guide — and the framework's own
inference objects as losses that :func:`rws_ref.losses.check_loss` reads.

Each bridge is an optional extra; the core never imports a framework::

    pip install 'rws_ref[pyro]'       # rws_ref.checking.bridges.pyro         (PyTorch + Pyro)
    pip install 'rws_ref[numpyro]'    # rws_ref.checking.bridges.numpyro      (JAX + NumPyro)
    pip install 'rws_ref[torch]'      # rws_ref.checking.bridges.plain_torch  (PyTorch code in no framework)
    pip install 'rws_ref[jax]'        # rws_ref.checking.bridges.plain_jax    (JAX code in no framework)

docs/bridges.md shows both at work; docs/conformance.md records what each framework object
computes in rws_ref's terms.
"""
