"""Matches between players of two-player games, played in lock step.

A *player* here is host code that moves in a batch of ``G`` games at once::

    player.reset(num_games, seed)      # before the games start
    player.act(states, to_act)         # -> int [G]; read where to_act is True
    player.observe(actions, live)      # every move played, by either side

:func:`search_player` (a trained :class:`agents.player.Player`: ONE jitted
search over the whole batch per ply), :func:`random_player`,
:func:`perfect_player` (tic-tac-toe) and :class:`MCTSBotPlayer` (OpenSpiel's
C++ ``MCTSBot`` with random rollouts, one bot and one OpenSpiel state per
game, stepped on the host and seeded per game). :func:`play_games` runs the
games; :func:`match` plays ``N`` games per side and returns win/draw/loss
rates; :func:`make_player` parses ``random``, ``perfect``, ``mcts:<sims>``
or a run directory.
"""
from __future__ import annotations

import functools
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from agents import evaluate as evaluate_lib
from agents import player as player_lib
from envs import openspiel_map

# MCTSBot settings that are not chosen per run (as in OpenSpiel's examples).
MCTS_UCT_C = 2.0
MCTS_ROLLOUTS = 1
MCTS_MAX_MEMORY_MB = 1000


def _game_seed(seed: int, game: int) -> int:
  return (int(seed) * 1_000_003 + game) % (2**31 - 1)


@functools.lru_cache(maxsize=None)
def _jitted_step(env):
  return jax.jit(jax.vmap(env.step))


class JaxPlayer:
  """A player given by ``fn(key, states) -> actions [G]`` (jitted), called
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


def search_player(player, greedy: bool = True) -> JaxPlayer:
  """A trained agent (an :class:`agents.player.Player`): one jitted search
  over all ``G`` games per ply, greedy unless ``greedy=False``."""
  name = (f"{player.run_dir or 'agent'} ({player.algo}, "
          f"{player.num_simulations} simulations)")
  # Not jitted again: Player's search is, once per config for all players.
  return JaxPlayer(player.env, name,
                   lambda key, states: player.act(states, key, greedy=greedy))


def random_player(env) -> JaxPlayer:
  """Uniformly random legal moves."""
  return JaxPlayer(env, "random", jax.jit(evaluate_lib.random_action))


def perfect_player(env) -> JaxPlayer:
  """A uniformly random optimal move (tic-tac-toe's solved game tree)."""
  if env.name != "tictactoe":
    raise ValueError(f"the perfect player exists for tictactoe only, not "
                     f"{env.name}")
  from envs import tictactoe_solver  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(tictactoe_solver.jax_tables())  # Built outside jit.
  return JaxPlayer(env, "perfect", jax.jit(evaluate_lib.perfect_action))


class MCTSBotPlayer:
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
    self.bots = [self._bot(_game_seed(seed, g)) for g in range(num_games)]

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


def play_games(env, a, b, a_seats, seed: int = 0) -> np.ndarray:
  """Plays ``G = len(a_seats)`` games of ``env`` between players ``a`` and
  ``b`` in lock step; returns float32 ``[G]``, ``a``'s total reward per game
  (+1 win, 0 draw, -1 loss).

  ``a_seats``: int ``[G]``, ``a``'s seat in each game (0 = moves first);
  ``b`` has the other seat. Each ply, each player is asked once for the
  whole batch (``to_act`` marks the games where it is to move).
  """
  if env.num_players != 2:
    raise ValueError(f"env: matches need a two-player game, {env.name} has "
                     f"{env.num_players} player(s)")
  if a is b:
    raise ValueError("a, b: two player objects are needed (a player keeps "
                     "per-game state); make a second one")
  a_seats = np.asarray(a_seats, np.int32)
  if a_seats.ndim != 1 or not np.all((a_seats == 0) | (a_seats == 1)):
    raise ValueError(f"a_seats: expected a [G] array of 0/1 seats, got "
                     f"{a_seats!r}")
  num_games = a_seats.shape[0]
  a.reset(num_games, _game_seed(seed, 0))
  b.reset(num_games, _game_seed(seed, 1))
  step = _jitted_step(env)
  states = jax.vmap(env.init)(jax.random.split(jax.random.PRNGKey(seed),
                                               num_games))
  returns = np.zeros(num_games, np.float32)
  max_plies = env.max_episode_steps or 100_000
  for _ in range(max_plies):
    live = ~np.asarray(states.terminated)
    if not live.any():
      break
    a_turn = live & (np.asarray(states.current_player) == a_seats)
    b_turn = live & ~a_turn
    actions = np.zeros(num_games, np.int32)
    for player, turn in ((a, a_turn), (b, b_turn)):
      if turn.any():
        actions = np.where(turn, player.act(states, turn), actions)
    a.observe(actions, live)
    b.observe(actions, live)
    states = step(states, jnp.asarray(actions))
    returns += np.take_along_axis(np.asarray(states.rewards),
                                  a_seats[:, None], axis=1)[:, 0]
  return returns


def match(env, a, b, games_per_side: int, seed: int = 0
          ) -> Dict[str, Dict[str, float]]:
  """``a`` against ``b``: ``games_per_side`` games with ``a`` first and as
  many with ``a`` second, all in one lock-step batch. Returns
  ``{"first": {"win", "draw", "loss"}, "second": {...}}``, ``a``'s rates
  by ``a``'s seat."""
  if games_per_side < 1:
    raise ValueError(f"games_per_side must be >= 1, got {games_per_side}")
  seats = np.repeat([0, 1], games_per_side)
  returns = play_games(env, a, b, seats, seed)
  return dict(first=evaluate_lib.summarize(returns[:games_per_side]),
              second=evaluate_lib.summarize(returns[games_per_side:]))


def make_player(spec: str, env, *, num_simulations: Optional[int] = None):
  """A player from a name: ``random``, ``perfect`` (tic-tac-toe),
  ``mcts:<simulations>`` (OpenSpiel's MCTSBot) or a run directory (a
  trained agent, searching with ``num_simulations`` if given). Raises
  ValueError (or ImportError for a missing OpenSpiel) with a clear message.
  """
  if spec == "random":
    return random_player(env)
  if spec == "perfect":
    return perfect_player(env)
  if spec.startswith("mcts:"):
    sims = spec[len("mcts:"):]
    if not sims.isdigit() or int(sims) < 1:
      raise ValueError(f"{spec!r}: expected mcts:<simulations>, a positive "
                       "integer, e.g. mcts:1000")
    if not openspiel_map.has_game(env.name):
      raise ValueError(f"{spec!r}: OpenSpiel's MCTSBot plays "
                       f"{', '.join(openspiel_map.GAMES)}, not {env.name}")
    return MCTSBotPlayer(env, int(sims))
  try:
    other = player_lib.load(spec, num_simulations=num_simulations)
  except player_lib.LoadError as e:
    raise ValueError(f"{spec!r} is not random, perfect, mcts:<simulations> "
                     f"or a usable run directory: {e}") from e
  if other.env_name != env.name:
    raise ValueError(f"{spec!r} was trained on {other.env_name}, not "
                     f"{env.name}")
  return search_player(other)


def mcts_evaluation(player, games_per_side: int, simulations: int,
                    seed: int = 0) -> Dict[str, Any]:
  """A trained ``player`` (greedy) against MCTSBot(``simulations``), as
  flat ``eval.json`` entries: ``vs_mcts_first_win`` ... and
  ``mcts_simulations``; ``{"vs_mcts_skipped": reason}`` if OpenSpiel is
  not installed; nothing for games OpenSpiel does not have."""
  env = player.env
  if not openspiel_map.has_game(env.name):
    return {}
  if not openspiel_map.available():
    return dict(vs_mcts_skipped="OpenSpiel is not installed (pip install "
                "open_spiel)")
  result = match(env, search_player(player), MCTSBotPlayer(env, simulations),
                 games_per_side, seed)
  out: Dict[str, Any] = dict(mcts_simulations=simulations)
  for side, rates in result.items():
    for k, v in rates.items():
      out[f"vs_mcts_{side}_{k}"] = v
  return out
