"""A run on disk: the run directory and its files (:mod:`~agents.runs.run_dir`),
metrics (:mod:`~agents.runs.metrics`), orbax checkpoints
(:mod:`~agents.runs.checkpoints`), the learning curve
(:mod:`~agents.runs.plot`), the lock of a live run (:mod:`~agents.runs.lock`)
and the processes of a run (:mod:`~agents.runs.processes`). It imports
nothing of the other stages.
"""
