"""A trained agent at play: the jitted evaluation games
(:mod:`~agents.evaluation.evaluator`), opponents and lock-step matches
(:mod:`~agents.evaluation.opponents`, :mod:`~agents.evaluation.matches`),
the evaluation during training (:mod:`~agents.evaluation.during_training`)
and :class:`~agents.evaluation.player.Player`, what ``agents.load`` returns.
"""
