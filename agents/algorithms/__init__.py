"""The algorithms, one module each (networks, acting, loss):
:mod:`~agents.algorithms.muzero`, :mod:`~agents.algorithms.alphazero`,
:mod:`~agents.algorithms.stochastic_muzero`; the loss helpers they share in
:mod:`~agents.algorithms.losses`.

``make_agent(config, env)`` builds the agent of ``config.algo``: what a
search needs (``root``, ``recurrent_fn``, ``act``) and its loss
(``make_loss()``). The rest of the training code is the same for all three.
"""
from __future__ import annotations

from agents.algorithms.alphazero import AlphaZeroAgent
from agents.algorithms.alphazero import make_agent as _alphazero
from agents.algorithms.muzero import MuZeroAgent
from agents.algorithms.muzero import make_agent as _muzero
from agents.algorithms.stochastic_muzero import StochasticAgent
from agents.algorithms.stochastic_muzero import make_agent as _stochastic
from agents.config import Config

_MAKERS = dict(muzero=_muzero, alphazero=_alphazero,
               stochastic_muzero=_stochastic)


def make_agent(config: Config, env) -> MuZeroAgent:
  """The agent of ``config.algo`` for ``env`` (a
  :class:`~agents.algorithms.muzero.MuZeroAgent` or subclass)."""
  return _MAKERS[config.algo](config, env)


__all__ = ["AlphaZeroAgent", "MuZeroAgent", "StochasticAgent", "make_agent"]
