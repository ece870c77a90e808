"""MuZero / AlphaZero / Stochastic MuZero agents trained with batched MCTS,
one folder per stage: :mod:`agents.algorithms` (networks, acting, losses),
:mod:`agents.training` (the jitted iteration and its loop), :mod:`agents.runs`
(a run on disk), :mod:`agents.evaluation` (evaluation, opponents, the
trained :class:`Player`); :mod:`agents.train` and :mod:`agents.play` are the
command lines.

``agents.load(run_dir)`` returns a trained agent as a
:class:`agents.evaluation.player.Player`.
"""
from agents.evaluation.player import LoadError, Player, load

__all__ = ["LoadError", "Player", "load"]
