"""Learners that run anywhere (one process, tests, or inside Ray actors): no ray imports here.

Import the modules themselves (``sharedsg.learn.sg``, ``.stream``, ``.types``, ...): this package
imports none of them, so its torch-free modules (``ledger``, ``ingest``) load without torch.
"""
