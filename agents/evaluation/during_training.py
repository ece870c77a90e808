"""The evaluations of a training run: quick ones every ``eval_every``
iterations (a metrics row's rates) and the final one (eval.json), against
random and perfect players, for the games OpenSpiel has its MCTSBot, and for
Connect Four (when bitbully is installed) the move accuracy on solved
positions (:mod:`agents.evaluation.accuracy`). Each says what it compiles
and plays, and how long it took."""
from __future__ import annotations

from typing import Any, Dict

import jax

from agents.evaluation import solver as solver_lib
from agents.evaluation.accuracy import move_accuracy
from agents.evaluation.evaluator import Evaluator, cached_evaluator
from agents.evaluation.matches import mcts_evaluation
from agents.evaluation.opponents import search_opponent
from agents.evaluation.player import Player
from agents.runs.console import ply_progress, timed
from envs import openspiel_map

# The iteration whose key the final evaluation uses.
FINAL = 10**9
# Solved positions of the final evaluation's move accuracy.
FINAL_SOLVER_POSITIONS = 1000


class TrainingEvaluation:
  """``quick(params, iteration)`` and ``final(params)`` for ``agent``'s run:
  flat dicts of rates (see :class:`~agents.evaluation.evaluator.Evaluator`),
  each game batch jitted once per process and seeded by the run's seed and
  the iteration. ``mcts_simulations`` > 0: the final evaluation also plays
  OpenSpiel's MCTSBot with that many simulations per move, with a progress
  bar (by ply) if ``progress``. ``solver_positions`` > 0 (Connect Four,
  bitbully installed): the quick evaluations add the greedy agent's move
  accuracy on that many solved positions, the final one on
  :data:`FINAL_SOLVER_POSITIONS`."""

  def __init__(self, agent, mcts_simulations: int = 0, log=print,
               progress: bool = False, solver_positions: int = 0):
    self.agent = agent
    self.mcts_simulations = mcts_simulations
    self.solver_positions = solver_positions
    self.log = log
    self.progress = progress
    self.key = jax.random.PRNGKey(agent.config.seed + 1_000_003)

  def _compiled(self, params, games: int, name: str) -> Evaluator:
    """The evaluator of ``games`` games per side, compiled (said, timed)."""
    evaluator = cached_evaluator(self.agent, games)
    with timed(self.log, f"Compiling the {name} ({evaluator.describe()})",
               f"Compiled the {name}"):
      evaluator.compile(params, self.key)
    return evaluator

  def prepare(self, params, iteration: int) -> None:
    """Compiles the quick evaluation if one comes after ``iteration``."""
    config = self.agent.config
    if config.steps // config.eval_every > iteration // config.eval_every:
      self._compiled(params, config.eval_games, "quick evaluation")

  def _accuracy(self, params, positions: int) -> Dict[str, Any]:
    if (not positions or self.agent.env.name != "connect4"
        or not solver_lib.available()):
      return {}
    player = Player(self.agent.config, params, agent=self.agent)
    return move_accuracy(search_opponent(player), self.agent.env, positions)

  def quick(self, params, iteration: int) -> Dict[str, Any]:
    evaluator = cached_evaluator(self.agent, self.agent.config.eval_games)
    results = evaluator(params, jax.random.fold_in(self.key, iteration))
    results.update(self._accuracy(params, self.solver_positions))
    return results

  def final(self, params) -> Dict[str, Any]:
    config = self.agent.config
    evaluator = self._compiled(params, config.final_eval_games,
                               "final evaluation")
    with timed(self.log, f"Final evaluation: {evaluator.describe()}",
               "Played the final evaluation"):
      results = evaluator(params, jax.random.fold_in(self.key, FINAL))
    if self.solver_positions and self.agent.env.name == "connect4":
      if solver_lib.available():
        with timed(self.log, f"Final evaluation: move accuracy on "
                   f"{FINAL_SOLVER_POSITIONS} solved positions",
                   "Measured the move accuracy"):
          results.update(self._accuracy(params, FINAL_SOLVER_POSITIONS))
      else:
        results["solver_accuracy_skipped"] = ("bitbully is not installed "
                                              "(pip install bitbully)")
    if self.mcts_simulations and openspiel_map.has_game(config.env):
      bot = f"OpenSpiel's MCTSBot({self.mcts_simulations})"
      player = Player(config, params, agent=self.agent)
      with timed(self.log, f"Final evaluation against {bot} at "
                 f"{config.env}: {config.final_eval_games} games per side",
                 f"Played against {bot}"):
        results.update(self._mcts(player))
    return results

  def _mcts(self, player) -> Dict[str, Any]:
    """The match against MCTSBot, with a bar by ply if ``progress``."""
    config = self.agent.config
    with ply_progress(self.agent.env.max_episode_steps or 0,
                      f"vs MCTSBot({self.mcts_simulations})",
                      self.progress) as on_ply:
      return mcts_evaluation(player, config.final_eval_games,
                             self.mcts_simulations, seed=config.seed,
                             on_ply=on_ply)
