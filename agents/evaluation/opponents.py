"""Opponents of two-player games for lock-step matches
(:mod:`agents.evaluation.matches`).

An *opponent* is host code that moves in a batch of ``G`` games at once::

    opponent.reset(num_games, seed)    # before the games start
    opponent.act(states, to_act)       # -> int [G]; read where to_act is True
    opponent.observe(actions, live)    # every move played, by either side

:func:`search_opponent` (a trained :class:`agents.evaluation.player.Player`:
ONE jitted search over the whole batch per ply), :func:`random_opponent`,
:func:`perfect_opponent` (tic-tac-toe), :class:`SolverOpponent` (Connect
Four's perfect solver, bitbully, on the host) and :class:`MCTSBotOpponent`
(OpenSpiel's C++ ``MCTSBot`` with random rollouts, one bot and one OpenSpiel
state per game, stepped on the host and seeded per game);
:func:`make_opponent` parses ``random``, ``perfect``, ``solver``,
``mcts:<sims>`` or a run directory. :func:`random_action` and
:func:`perfect_action` are the jitted-able moves of the random and perfect
opponents, which the evaluator (:mod:`agents.evaluation.evaluator`) plays
inside its own games.
"""
from __future__ import annotations

import functools
import random
from typing import Optional

import jax
import numpy as np

from agents.evaluation import player as player_lib
from agents.evaluation import solver as solver_lib
from agents.training.selfplay import random_action
from envs import openspiel_map
from envs import tictactoe_solver

# MCTSBot settings that are not chosen per run (as in OpenSpiel's examples).
MCTS_UCT_C = 2.0
MCTS_ROLLOUTS = 1
MCTS_MAX_MEMORY_MB = 1000


def game_seed(seed: int, game: int) -> int:
  """The seed of game ``game`` of a match seeded ``seed``."""
  return (int(seed) * 1_000_003 + game) % (2**31 - 1)


@functools.lru_cache(maxsize=None)
def jitted_step(env):
  """``jax.jit(jax.vmap(env.step))``, once per env."""
  return jax.jit(jax.vmap(env.step))


class JaxOpponent:
  """An opponent given by ``fn(key, states) -> actions [G]`` (jitted), called
  once per ply on the whole batch."""

  def __init__(self, env, name: str, fn):
    self.env = env
    self.name = name
    self._fn = fn
    self._key = jax.random.PRNGKey(0)

  def reset(self, num_games: int, seed: int) -> None:
    del num_games
    self._key = jax.random.PRNGKey(seed)

  def act(self, states, to_act) -> np.ndarray:
    del to_act
    self._key, key = jax.random.split(self._key)
    return np.asarray(self._fn(key, states))

  def observe(self, actions, live) -> None:
    del actions, live


def search_opponent(player, greedy: bool = True) -> JaxOpponent:
  """A trained agent (an :class:`agents.evaluation.player.Player`): one
  jitted search over all ``G`` games per ply, greedy unless
  ``greedy=False``."""
  name = (f"{player.run_dir or 'agent'} ({player.algo}, "
          f"{player.num_simulations} simulations)")
  # Not jitted again: Player's search is, once per config for all players.
  return JaxOpponent(
      player.env, name,
      lambda key, states: player.act(states, key, greedy=greedy))


def perfect_action(key, states):
  """A uniformly random optimal move ``[B]`` of each of a batch of
  tic-tac-toe states (call :func:`build_perfect_tables` first)."""
  keys = jax.random.split(key, states.board.shape[0])
  return jax.vmap(tictactoe_solver.perfect_action)(keys, states.board)


def build_perfect_tables() -> None:
  """Builds the solver's cached tables eagerly: if they were first built
  inside a trace, the cache would hold a tracer."""
  with jax.ensure_compile_time_eval():
    jax.block_until_ready(tictactoe_solver.jax_tables())


def random_opponent(env) -> JaxOpponent:
  """Uniformly random legal moves."""
  return JaxOpponent(env, "random", jax.jit(random_action))


def perfect_opponent(env) -> JaxOpponent:
  """A uniformly random optimal move (tic-tac-toe's solved game tree)."""
  if env.name != "tictactoe":
    raise ValueError(f"the perfect player exists for tictactoe only, not "
                     f"{env.name}")
  build_perfect_tables()
  return JaxOpponent(env, "perfect", jax.jit(perfect_action))


class SolverOpponent:
  """Perfect Connect Four play (:mod:`agents.evaluation.solver`): in each
  game a uniformly random one of the moves with the best exact score (the
  fastest win, else a draw, else the slowest loss), drawn from a
  ``random.Random`` seeded like :class:`MCTSBotOpponent`'s bots by
  :meth:`reset`. Raises ImportError naming ``pip install bitbully`` if the
  solver is not installed."""

  def __init__(self, env):
    solver_lib.check_env(env)
    self.env = env
    self.name = "solver"
    self.solver = solver_lib.shared_solver()
    self.rngs = []

  def reset(self, num_games: int, seed: int) -> None:
    self.rngs = [random.Random(game_seed(seed, g)) for g in range(num_games)]

  def act(self, states, to_act) -> np.ndarray:
    boards = np.asarray(states.board)
    players = np.asarray(states.current_player)
    actions = np.zeros(boards.shape[0], np.int32)
    for g in np.flatnonzero(to_act):
      actions[g] = self.solver.best_move(boards[g], self.rngs[g],
                                         int(players[g]))
    return actions

  def observe(self, actions, live) -> None:
    del actions, live


class MCTSBotOpponent:
  """OpenSpiel's C++ ``MCTSBot`` (UCT with random rollouts, MCTS-Solver).

  One bot per game, seeded ``(seed * 1000003 + game) mod (2**31 - 1)`` by
  :meth:`reset`, so a match is reproducible. The bot's OpenSpiel state is
  replayed move by move from the same actions (see
  :mod:`envs.openspiel_map`), and checked against ours before each of its
  moves: a difference raises RuntimeError naming it.
  """

  def __init__(self, env, simulations: int, *, uct_c: float = MCTS_UCT_C,
               rollouts: int = MCTS_ROLLOUTS, solve: bool = True):
    if (isinstance(simulations, bool) or not isinstance(simulations, int)
        or simulations < 1):
      raise ValueError("simulations: MCTSBot needs a positive integer "
                       f"number of simulations, got {simulations!r}")
    self.env = env
    self.pyspiel = openspiel_map.import_pyspiel()
    self.game = openspiel_map.load_game(env.name)
    self.simulations = simulations
    self.uct_c, self.rollouts, self.solve = uct_c, rollouts, solve
    self.name = f"mcts:{simulations}"
    self.states, self.bots = [], []

  def _bot(self, seed: int):
    ps = self.pyspiel
    evaluator = ps.RandomRolloutEvaluator(self.rollouts, seed)
    return ps.MCTSBot(self.game, evaluator, self.uct_c, self.simulations,
                      MCTS_MAX_MEMORY_MB, self.solve, seed, False)

  def reset(self, num_games: int, seed: int) -> None:
    self.states = [self.game.new_initial_state() for _ in range(num_games)]
    self.bots = [self._bot(game_seed(seed, g)) for g in range(num_games)]

  def act(self, states, to_act) -> np.ndarray:
    actions = np.zeros(len(self.states), np.int32)
    host = jax.device_get(states)
    for g in np.flatnonzero(to_act):
      state = jax.tree.map(lambda x: x[g], host)  # pylint: disable=cell-var-from-loop
      diff = openspiel_map.mismatches(state, self.states[g])
      if diff:
        raise RuntimeError(f"game {g}: our position and OpenSpiel's differ: "
                           + "; ".join(diff))
      actions[g] = self.bots[g].step(self.states[g])
    return actions

  def observe(self, actions, live) -> None:
    for g in np.flatnonzero(live):
      self.states[g].apply_action(
          openspiel_map.to_openspiel_action(self.env.name, actions[g]))


def make_opponent(spec: str, env, *,
                  num_simulations: Optional[int] = None):
  """An opponent from a name: ``random``, ``perfect`` (tic-tac-toe),
  ``solver`` (Connect Four's perfect solver), ``mcts:<simulations>``
  (OpenSpiel's MCTSBot) or a run directory (a trained agent, searching
  with ``num_simulations`` if given). Raises ValueError (or ImportError for
  a missing OpenSpiel or bitbully) with a clear message.
  """
  if spec == "random":
    return random_opponent(env)
  if spec == "perfect":
    return perfect_opponent(env)
  if spec == "solver":
    return SolverOpponent(env)
  if spec.startswith("mcts:"):
    sims = spec[len("mcts:"):]
    if not sims.isdigit() or int(sims) < 1:
      raise ValueError(f"{spec!r}: expected mcts:<simulations>, a positive "
                       "integer, e.g. mcts:1000")
    if not openspiel_map.has_game(env.name):
      raise ValueError(f"{spec!r}: OpenSpiel's MCTSBot plays "
                       f"{', '.join(openspiel_map.GAMES)}, not {env.name}")
    return MCTSBotOpponent(env, int(sims))
  try:
    other = player_lib.load(spec, num_simulations=num_simulations)
  except player_lib.LoadError as e:
    raise ValueError(f"{spec!r} is not random, perfect, solver, "
                     f"mcts:<simulations> or a usable run directory: {e}"
                     ) from e
  if other.env_name != env.name:
    raise ValueError(f"{spec!r} was trained on {other.env_name}, not "
                     f"{env.name}")
  return search_opponent(other)
