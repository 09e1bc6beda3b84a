"""The checking wing: rws_ref's checks of other people's RWS code.

One module per kind of check, all reading the core (the estimators, the registry, the exact oracle):

    testing        check_estimator and the hypothesis strategies: the properties an estimator must have
    properties     the properties, one function each, and the typed results they return
    mistakes       what wrong implementations of each estimator produce; diagnose names the closest
    diagnose       expected against got, and the closest known mistake
    losses         check_loss: a framework's scalar loss and the convention it follows
    sampling       samplers against their own densities (χ², the score identity, the PIT)
    endtoend       check_stochastic: a whole stochastic estimator against its exact mean
    adapters       densities written in any framework, as a protocol model and guide
    bridges/       Pyro and NumPyro programs as a protocol pair; their losses on forced particles
    limits         time limits on the user's code
    vectors        language-neutral test vectors
    audit          rws_ref's self-check (`rws-ref audit`), also on a user's model
    exercises      the course's exercises, graded by the oracle
    pytest_plugin  the rws_check fixture

The old flat paths (``rws_ref.testing``, ``rws_ref.diagnose``, ``rws_ref.pytest_plugin``, …) keep working
(rws_ref/_moved.py).  The checking wing never imports the experiments wing.
"""
