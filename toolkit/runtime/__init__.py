"""The runtime: carries plans out against a backend it is handed.

    engine.py       Reconciler (plan, apply, drift, destroy) and rollback
    transaction.py  snapshot, journal, execute, verify; restore on any failure
    execute.py      steps in phase order, batches, verification with retries
    failpoints.py   failures on purpose, for tests and demonstrations
"""
