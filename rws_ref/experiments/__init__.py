"""The experiments wing: training and the papers' experiments, on top of the core.

    train          the full algorithm: configuration and the loop (rws-ref train)
    optim          its optimizers (SGD, Adam)
    checkpoints    checkpoints and provenance
    plots          learning curves
    runner         the runs of an experiment: local pool or Dask, run files validated, summaries
    analysis       the signal-to-noise study
    le2019_gmm     Le et al. (2019), the Gaussian-mixture comparison (rws-ref reproduce le2019-gmm)
    bb2015_digits  Bornschein & Bengio (2015) on real digits, exact likelihoods (rws-ref reproduce bb2015-digits)

The old flat paths (``rws_ref.train``, ``rws_ref.reproduce``, ``rws_ref.digits``, …) keep working
(rws_ref/_moved.py).  The experiments wing never imports the checking wing.
"""
