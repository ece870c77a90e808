"""Jitted, batched evaluation games.

The agent plays with search, greedily (Gumbel: ``gumbel_scale=0`` and the
search's action; pUCT: no Dirichlet noise, temperature 0). Two-player games
are played against an opponent (``"random"``: uniform over legal moves;
``"perfect"``: a uniformly random optimal move, tic-tac-toe only; the moves
of :mod:`agents.evaluation.opponents`) with the agent as first (player 0)
and as second player (player 1); each game's result is read from the
agent's accumulated reward. Single-player games report the mean return and
the success rate (for Catch: the catch rate, episodes ending with reward
+1), next to the mean return of a uniformly random player on as many games
(``random_return``); games whose env has ``largest_tile`` (2048) also
report the share of games by largest tile (``tile_512`` for the agent,
``random_tile_512`` for the random player...).
"""
from __future__ import annotations

import functools
from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

from agents.evaluation.accuracy import format_accuracy
from agents.evaluation.matches import summarize
from agents.evaluation.opponents import build_perfect_tables, perfect_action
from agents.training.selfplay import random_action

OPPONENTS = ("random", "perfect")


def _max_steps(env) -> int:
  """The evaluation games' step limit: the env's, or 10 000."""
  return int(env.max_episode_steps) if env.max_episode_steps else 10_000


def make_play_games(agent, agent_seat, opponent):
  """``play(params, key) -> returns [G]``: the agent's total reward in each
  of ``G = len(agent_seat)`` games played at once.

  ``agent_seat``: int ``[G]``, the agent's seat in each game (0 = first);
  ``opponent``: int ``[G]``, index into ``OPPONENTS`` per game (ignored for
  single-player games).
  """
  env = agent.env
  agent_seat = jnp.asarray(agent_seat, jnp.int32)
  opponent = jnp.asarray(opponent, jnp.int32)
  num_games = agent_seat.shape[0]
  use_perfect = env.num_players == 2 and bool(jnp.any(opponent == 1))
  if use_perfect and env.name != "tictactoe":
    raise ValueError("the perfect opponent exists for tictactoe only")
  if use_perfect:
    build_perfect_tables()

  def act(params, key, states):
    agent_key, opp_key = jax.random.split(key)
    action = agent.act(params, agent_key, states, greedy=True).action
    if env.num_players == 2:
      opp_action = random_action(opp_key, states)
      if use_perfect:
        opp_action = jnp.where(opponent == 1,
                               perfect_action(opp_key, states), opp_action)
      action = jnp.where(states.current_player == agent_seat, action,
                         opp_action)
    return action

  def agent_reward(states):
    return jnp.take_along_axis(
        states.rewards, agent_seat[:, None] % states.rewards.shape[1],
        axis=1)[:, 0]

  def play(params, key):
    return _play_out(env, functools.partial(act, params), agent_reward,
                     num_games)(key)[0]

  return play


def make_solo_games(env, act, num_games: int):
  """``play(key) -> (returns [G], final states [G])``: ``G = num_games``
  single-player games played at once, each move ``act(key, states) ->
  actions [G]``."""
  return _play_out(env, act, lambda states: states.rewards[:, 0], num_games)


def _play_out(env, act, reward, num_games: int):
  """``play(key) -> (returns [G], final states [G])``: ``G = num_games``
  games from ``env.init`` played at once until all end (or the env's step
  limit), each move ``act(key, states) -> actions [G]``, each step adding
  ``reward(states) -> [G]`` to the returns."""
  max_steps = _max_steps(env)

  def play(key):
    init_key, key = jax.random.split(key)
    states = jax.vmap(env.init)(jax.random.split(init_key, num_games))

    def cond(carry):
      states, _, _, t = carry
      return (~jnp.all(states.terminated)) & (t < max_steps)

    def body(carry):
      states, returns, key, t = carry
      key, act_key = jax.random.split(key)
      states = jax.vmap(env.step)(states, act(act_key, states))
      return states, returns + reward(states), key, t + 1

    states, returns, _, _ = jax.lax.while_loop(
        cond, body, (states, jnp.zeros(num_games), key, jnp.int32(0)))
    return returns, states

  return play


def _tile_shares(prefix, tiles) -> Dict[str, float]:
  values, counts = np.unique(np.asarray(tiles), return_counts=True)
  return {f"{prefix}tile_{int(v)}": float(c) / len(tiles)
          for v, c in zip(values, counts)}


class Evaluator:
  """All evaluation games of a game in ONE jitted call;
  ``__call__(params, key)`` returns a flat dict of rates, e.g.
  ``vs_random_first_win``, ``vs_perfect_second_loss`` or ``catch_rate``."""

  def __init__(self, agent, num_games: int):
    self.agent = agent
    self.num_games = num_games
    env = agent.env
    if env.num_players == 1:
      def play_solo(params, key):
        act = lambda k, states: agent.act(params, k, states,
                                          greedy=True).action
        return make_solo_games(env, act, num_games)(key)
      self.play_solo = jax.jit(play_solo)
      self.play_random = jax.jit(make_solo_games(env, random_action,
                                                 num_games))
      return
    opponents = ["random"] + (["perfect"] if env.name == "tictactoe"
                              else [])
    self.matches = [(f"vs_{opp}_{side}", seat, OPPONENTS.index(opp))
                    for opp in opponents
                    for seat, side in ((0, "first"), (1, "second"))]
    seats = [p for _, p, _ in self.matches for _ in range(num_games)]
    opps = [o for _, _, o in self.matches for _ in range(num_games)]
    self.play = jax.jit(make_play_games(agent, seats, opps))

  def describe(self) -> str:
    """What it plays, e.g. ``"64 games per side against random, perfect"``."""
    if self.agent.env.num_players == 1:
      return f"{self.num_games} games, and as many by a random player"
    opponents = dict.fromkeys(name.split("_")[1] for name, _, _ in
                              self.matches)
    return (f"{self.num_games} games per side against "
            f"{', '.join(opponents)}")

  def compile(self, params, key) -> None:
    """Compiles its games for the shapes of ``params`` and ``key`` ahead of
    the first call (jax keeps them for the calls)."""
    if self.agent.env.num_players == 1:
      agent_key, random_key = jax.random.split(key)
      self.play_solo.lower(params, agent_key).compile()
      self.play_random.lower(random_key).compile()
    else:
      self.play.lower(params, key).compile()

  def _solo(self, params, key) -> Dict[str, float]:
    env = self.agent.env
    agent_key, random_key = jax.random.split(key)
    returns, states = self.play_solo(params, agent_key)
    random_returns, random_states = self.play_random(random_key)
    out = dict(eval_return=float(jnp.mean(returns)),
               random_return=float(jnp.mean(random_returns)))
    out["catch_rate" if env.name == "catch" else "success_rate"] = float(
        jnp.mean(returns > 0))
    if hasattr(env, "largest_tile"):
      out.update(_tile_shares("", env.largest_tile(states)))
      out.update(_tile_shares("random_", env.largest_tile(random_states)))
    return out

  def __call__(self, params, key) -> Dict[str, float]:
    if self.agent.env.num_players == 1:
      return self._solo(params, key)
    all_returns = self.play(params, key)
    out = {}
    for i, (name, _, _) in enumerate(self.matches):
      returns = all_returns[i * self.num_games:(i + 1) * self.num_games]
      for k, v in summarize(returns).items():
        out[f"{name}_{k}"] = v
    return out


def format_report(results: Dict[str, float]) -> str:
  """A small text table of the rates in ``results``."""
  lines = []
  if "catch_rate" in results or "success_rate" in results:
    for k in ("catch_rate", "success_rate", "eval_return", "random_return"):
      if k in results:
        lines.append(f"{k}: {results[k]:.3f}")
    tiles = sorted({int(k.rsplit("_", 1)[1]) for k in results
                    if k.startswith(("tile_", "random_tile_"))})
    if tiles:
      lines.append("largest tile   " + " ".join(f"{t:>6}" for t in tiles))
      for who, prefix in (("agent", ""), ("random", "random_")):
        lines.append(f"{who:<14} " + " ".join(
            f"{results.get(f'{prefix}tile_{t}', 0.0):>6.3f}" for t in tiles))
    return "\n".join(lines)
  lines.append(f"{'opponent':<10} {'agent plays':<12} {'win':>6} {'draw':>6} "
               f"{'loss':>6}")
  for opp in OPPONENTS + ("mcts",):
    label = opp
    if opp == "mcts" and "mcts_simulations" in results:
      label = f"mcts({results['mcts_simulations']})"
    for side in ("first", "second"):
      name = f"vs_{opp}_{side}"
      if f"{name}_win" in results:
        lines.append(
            f"{label:<10} {side:<12} {results[name + '_win']:>6.3f} "
            f"{results[name + '_draw']:>6.3f} {results[name + '_loss']:>6.3f}")
  if "vs_mcts_skipped" in results:
    lines.append(f"OpenSpiel's MCTSBot: not played ("
                 f"{results['vs_mcts_skipped']})")
  if "solver_accuracy" in results:
    lines.append(format_accuracy(results, "agent"))
  return "\n".join(lines)


@functools.lru_cache(maxsize=16)
def cached_evaluator(agent, num_games: int) -> Evaluator:
  """An :class:`Evaluator` of ``agent`` (equal agents: one config and env),
  built and compiled once per process."""
  return Evaluator(agent, num_games)
