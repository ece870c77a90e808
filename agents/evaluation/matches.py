"""Matches between opponents of two-player games, played in lock step.

:func:`play_games` runs ``G`` games at once between two opponents
(:mod:`agents.evaluation.opponents`), asking each once per ply for the whole
batch; :func:`match` plays ``N`` games per side and returns win/draw/loss
rates; :func:`mcts_evaluation` is a trained agent's match against
OpenSpiel's MCTSBot, as eval.json entries.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from agents.evaluation.opponents import (MCTSBotOpponent, game_seed,
                                         jitted_step, search_opponent)
from envs import openspiel_map


def summarize(returns) -> Dict[str, float]:
  """``win``, ``draw`` and ``loss`` rates of returns ``[G]`` (> 0, 0, < 0)."""
  returns = jnp.asarray(returns)
  return dict(win=float(jnp.mean(returns > 0)),
              draw=float(jnp.mean(returns == 0)),
              loss=float(jnp.mean(returns < 0)))


# on_ply(plies played, games still running): called after each ply.
OnPly = Optional[Callable[[int, int], None]]


def play_games(env, a, b, a_seats, seed: int = 0, on_ply: OnPly = None
               ) -> np.ndarray:
  """Plays ``G = len(a_seats)`` games of ``env`` between opponents ``a``
  and ``b`` in lock step; returns float32 ``[G]``, ``a``'s total reward per game
  (+1 win, 0 draw, -1 loss).

  ``a_seats``: int ``[G]``, ``a``'s seat in each game (0 = moves first);
  ``b`` has the other seat. Each ply, each player is asked once for the
  whole batch (``to_act`` marks the games where it is to move);
  ``on_ply(plies played, games still running)`` after each ply (progress).
  """
  if env.num_players != 2:
    raise ValueError(f"env: matches need a two-player game, {env.name} has "
                     f"{env.num_players} player(s)")
  if a is b:
    raise ValueError("a, b: two opponent objects are needed (an opponent "
                     "keeps per-game state); make a second one")
  a_seats = np.asarray(a_seats, np.int32)
  if a_seats.ndim != 1 or not np.all((a_seats == 0) | (a_seats == 1)):
    raise ValueError(f"a_seats: expected a [G] array of 0/1 seats, got "
                     f"{a_seats!r}")
  num_games = a_seats.shape[0]
  a.reset(num_games, game_seed(seed, 0))
  b.reset(num_games, game_seed(seed, 1))
  step = jitted_step(env)
  states = jax.vmap(env.init)(jax.random.split(jax.random.PRNGKey(seed),
                                               num_games))
  returns = np.zeros(num_games, np.float32)
  max_plies = env.max_episode_steps or 100_000
  for ply in range(max_plies):
    live = ~np.asarray(states.terminated)
    if not live.any():
      break
    a_turn = live & (np.asarray(states.current_player) == a_seats)
    b_turn = live & ~a_turn
    actions = np.zeros(num_games, np.int32)
    for opponent, turn in ((a, a_turn), (b, b_turn)):
      if turn.any():
        actions = np.where(turn, opponent.act(states, turn), actions)
    a.observe(actions, live)
    b.observe(actions, live)
    states = step(states, jnp.asarray(actions))
    returns += np.take_along_axis(np.asarray(states.rewards),
                                  a_seats[:, None], axis=1)[:, 0]
    if on_ply is not None:
      on_ply(ply + 1, int(np.sum(~np.asarray(states.terminated))))
  return returns


def match(env, a, b, games_per_side: int, seed: int = 0,
          on_ply: OnPly = None) -> Dict[str, Dict[str, float]]:
  """``a`` against ``b``: ``games_per_side`` games with ``a`` first and as
  many with ``a`` second, all in one lock-step batch. Returns
  ``{"first": {"win", "draw", "loss"}, "second": {...}}``, ``a``'s rates
  by ``a``'s seat; ``on_ply``: see :func:`play_games`."""
  if games_per_side < 1:
    raise ValueError(f"games_per_side must be >= 1, got {games_per_side}")
  seats = np.repeat([0, 1], games_per_side)
  returns = play_games(env, a, b, seats, seed, on_ply)
  return dict(first=summarize(returns[:games_per_side]),
              second=summarize(returns[games_per_side:]))


def mcts_evaluation(player, games_per_side: int, simulations: int,
                    seed: int = 0, on_ply: OnPly = None) -> Dict[str, Any]:
  """A trained ``player`` (greedy) against MCTSBot(``simulations``), as
  flat ``eval.json`` entries: ``vs_mcts_first_win`` ... and
  ``mcts_simulations``; ``{"vs_mcts_skipped": reason}`` if OpenSpiel is
  not installed; nothing for games OpenSpiel does not have. ``on_ply``:
  see :func:`play_games`."""
  env = player.env
  if not openspiel_map.has_game(env.name):
    return {}
  if not openspiel_map.available():
    return dict(vs_mcts_skipped="OpenSpiel is not installed (pip install "
                "open_spiel)")
  result = match(env, search_opponent(player),
                 MCTSBotOpponent(env, simulations), games_per_side, seed,
                 on_ply)
  out: Dict[str, Any] = dict(mcts_simulations=simulations)
  for side, rates in result.items():
    for k, v in rates.items():
      out[f"vs_mcts_{side}_{k}"] = v
  return out
