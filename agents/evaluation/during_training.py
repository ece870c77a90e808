"""The evaluations of a training run: quick ones every ``eval_every``
iterations (a metrics row's rates) and the final one (eval.json), against
random and perfect players and, for the games OpenSpiel has, its MCTSBot."""
from __future__ import annotations

from typing import Any, Dict

import jax

from agents.evaluation.evaluator import cached_evaluator
from agents.evaluation.matches import mcts_evaluation
from agents.evaluation.player import Player
from envs import openspiel_map

# The iteration whose key the final evaluation uses.
FINAL = 10**9


class TrainingEvaluation:
  """``quick(params, iteration)`` and ``final(params)`` for ``agent``'s run:
  flat dicts of rates (see :class:`~agents.evaluation.evaluator.Evaluator`),
  each game batch jitted once per process and seeded by the run's seed and
  the iteration. ``mcts_simulations`` > 0: the final evaluation also plays
  OpenSpiel's MCTSBot with that many simulations per move."""

  def __init__(self, agent, mcts_simulations: int = 0, log=print):
    self.agent = agent
    self.mcts_simulations = mcts_simulations
    self.log = log
    self.key = jax.random.PRNGKey(agent.config.seed + 1_000_003)

  def _rates(self, params, iteration: int, games: int) -> Dict[str, Any]:
    evaluator = cached_evaluator(self.agent, games)
    return evaluator(params, jax.random.fold_in(self.key, iteration))

  def quick(self, params, iteration: int) -> Dict[str, Any]:
    return self._rates(params, iteration, self.agent.config.eval_games)

  def final(self, params) -> Dict[str, Any]:
    config = self.agent.config
    results = self._rates(params, FINAL, config.final_eval_games)
    if self.mcts_simulations and openspiel_map.has_game(config.env):
      self.log(f"Final evaluation against OpenSpiel's MCTSBot("
               f"{self.mcts_simulations}) at {config.env}")
      results.update(mcts_evaluation(
          Player(config, params, agent=self.agent), config.final_eval_games,
          self.mcts_simulations, seed=config.seed))
    return results
