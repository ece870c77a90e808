"""The jitted training iteration and the loop around it: self-play
(:mod:`~agents.training.selfplay`), the replay buffer
(:mod:`~agents.training.replay`), targets (:mod:`~agents.training.targets`),
batches and reanalyse (:mod:`~agents.training.batch`,
:mod:`~agents.training.reanalyse`), the state and its sharding
(:mod:`~agents.training.state`, :mod:`~agents.training.parallel`), the
sharded step (:mod:`~agents.training.step`) and the loop that runs, logs and
checkpoints it (:mod:`~agents.training.loop`).
"""
