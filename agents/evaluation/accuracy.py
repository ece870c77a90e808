"""Move accuracy on solved Connect Four positions: how close to perfect a
player is.

The positions (:func:`solved_positions`) are a fixed, seeded set reached by
uniformly random play: position ``i`` of seed ``s`` draws its number of
stones uniformly in ``[0, 41]`` and plays that many uniformly random legal
moves from the empty board (a game that ends on the way starts over), all
from ``numpy.random.default_rng([s, i])``; so the first ``n`` positions of
a larger set are the set of ``n``. The solver (:mod:`agents.evaluation.
solver`) scores every legal move of each.

A player's move *keeps the solved outcome* when its outcome under perfect
play (win, draw or loss: the sign of its score) is the best move's; the
*move accuracy* is the share of positions where it does, overall and by
phase of the game, by the number of stones on the board: ``opening`` 0-11
(the solver's opening book reaches 12 plies), ``middle`` 12-27,
``endgame`` 28-41; and among the *critical* positions, where some legal
move loses the solved outcome (in the others every move keeps it). Any
opponent of :mod:`agents.evaluation.opponents`
(a trained agent's greedy search, OpenSpiel's MCTSBot, random, the solver)
is asked for its move in all positions at once: it first observes each
position's moves (as in a match), then acts once on the whole batch.
"""
from __future__ import annotations

import functools
from typing import Any, Dict, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from agents.evaluation import solver as solver_lib
from agents.evaluation.opponents import jitted_step
from envs import connect4

# (name, fewest stones, most stones) of each phase of the game.
PHASES = (("opening", 0, 11), ("middle", 12, 27), ("endgame", 28, 41))
MAX_STONES = connect4.ROWS * connect4.COLUMNS - 1


class Positions(NamedTuple):
  """Solved positions (numpy, read-only): ``moves`` int32 ``[N, 41]`` (the
  columns played from the empty board, -1 after the last), ``stones``
  int32 ``[N]`` (moves played) and ``scores`` int32 ``[N, 7]`` (each
  column's score for the player to move, :data:`solver.ILLEGAL` if full)."""
  moves: np.ndarray
  stones: np.ndarray
  scores: np.ndarray


def random_moves(seed: int, index: int):
  """The moves to position ``index`` of the set of ``seed`` (see the module
  docstring): a list of columns, reaching a position where the game goes
  on."""
  bb = solver_lib.import_bitbully()
  rng = np.random.default_rng([seed, index])
  length = int(rng.integers(0, MAX_STONES + 1))
  while True:
    board, moves = bb.Board(), []
    while len(moves) < length:
      column = int(rng.choice(board.legal_moves()))
      board.play(column)
      moves.append(column)
      if board.is_game_over():
        break
    if not board.is_game_over():
      return moves


def phase_index(stones) -> np.ndarray:
  """int ``[N]``: the index into :data:`PHASES` of positions with
  ``stones`` stones."""
  stones = np.asarray(stones)
  out = np.full(stones.shape, -1, np.int32)
  for i, (_, low, high) in enumerate(PHASES):
    out[(stones >= low) & (stones <= high)] = i
  if np.any(out < 0):
    raise ValueError(f"stones: expected 0 to {MAX_STONES}, got "
                     f"{stones[out < 0]}")
  return out


@functools.lru_cache(maxsize=4)
def solved_positions(num: int, seed: int = 0) -> Positions:
  """The first ``num`` positions of the set of ``seed``, solved; built
  once per process (about 15 ms a position on one core)."""
  if num < 1:
    raise ValueError(f"num: expected a positive number of positions, got "
                     f"{num}")
  solver = solver_lib.shared_solver()
  moves = np.full((num, MAX_STONES), -1, np.int32)
  stones = np.zeros(num, np.int32)
  scores = np.zeros((num, connect4.COLUMNS), np.int32)
  for i in range(num):
    line = random_moves(seed, i)
    moves[i, :len(line)] = line
    stones[i] = len(line)
    board = solver_lib.import_bitbully().Board(line)
    scores[i] = solver.scores(board_array(board), len(line) % 2)
  for a in (moves, stones, scores):
    a.flags.writeable = False
  return Positions(moves, stones, scores)


def board_array(board) -> np.ndarray:
  """Our ``[6, 7]`` board (row 0 on top) of a bitbully ``Board``."""
  return np.asarray(board.to_array(), np.int32).T[::-1]


def states_of(env, positions: Positions):
  """Our batched env states ``[N]`` of ``positions``, replayed move by move
  (raises RuntimeError if one ended or has a different stone count)."""
  solver_lib.check_env(env)
  num = positions.stones.shape[0]
  step = jitted_step(env)
  states = jax.vmap(env.init)(jax.random.split(jax.random.PRNGKey(0), num))
  for ply in range(int(positions.stones.max(initial=0))):
    live = jnp.asarray(ply < positions.stones)
    moved = step(states, jnp.asarray(np.maximum(positions.moves[:, ply], 0)))
    states = jax.tree.map(
        lambda new, old: jnp.where(
            live.reshape((-1,) + (1,) * (new.ndim - 1)), new, old),
        moved, states)
  if (np.any(np.asarray(states.terminated))
      or np.any(np.asarray(states.step_count) != positions.stones)):
    raise RuntimeError("replaying the solved positions ended a game or "
                       "lost a move")
  return states


def chosen_moves(opponent, positions: Positions, states, seed: int = 0
                 ) -> np.ndarray:
  """int32 ``[N]``: ``opponent``'s move in each position (``states``, from
  :func:`states_of`): reset for ``N`` games, shown each position's moves,
  then asked once for all."""
  num = positions.stones.shape[0]
  opponent.reset(num, seed)
  for ply in range(int(positions.stones.max(initial=0))):
    opponent.observe(positions.moves[:, ply], ply < positions.stones)
  return np.asarray(opponent.act(states, np.ones(num, bool)), np.int32)


def outcomes(scores):
  """``(legal [N, 7], outcome [N, 7], best outcome [N])`` of ``scores
  [N, 7]``: which moves are legal, each move's solved outcome (+1 win, 0
  draw, -1 loss for the mover) and the best of the legal ones."""
  scores = np.asarray(scores)
  legal = scores != solver_lib.ILLEGAL
  outcome = np.sign(scores)
  return legal, outcome, np.max(np.where(legal, outcome, -2), axis=1)


def critical(scores) -> np.ndarray:
  """bool ``[N]``: positions (``scores [N, 7]``) where some legal move
  loses the solved outcome, so that a player can go wrong."""
  legal, outcome, best = outcomes(scores)
  return np.any(legal & (outcome != best[:, None]), axis=1)


def keeps_outcome(scores, actions) -> np.ndarray:
  """bool ``[N]``: whether each move ``actions [N]`` keeps the solved
  outcome of its position (``scores [N, 7]``); an illegal move does not."""
  scores = np.asarray(scores)
  actions = np.asarray(actions)
  legal, outcome, best = outcomes(scores)
  rows = np.arange(scores.shape[0])
  ok = (actions >= 0) & (actions < scores.shape[1])
  column = np.clip(actions, 0, scores.shape[1] - 1)
  return ok & legal[rows, column] & (outcome[rows, column] == best)


def accuracy_report(keeps, stones, hard, prefix: str = "solver_accuracy"
                    ) -> Dict[str, Any]:
  """Flat entries (for metrics rows and eval.json): ``<prefix>`` the share
  of ``keeps [N]`` that is true, ``<prefix>_<phase>`` the same by phase,
  ``<prefix>_critical`` the same among the positions where ``hard [N]``
  (see :func:`critical`; None for an empty group), ``<prefix>_positions``
  N and ``<prefix>_critical_positions`` how many are critical."""
  keeps = np.asarray(keeps, bool)
  hard = np.asarray(hard, bool)
  phases = phase_index(stones)
  share = lambda x: float(np.mean(x)) if x.size else None
  out: Dict[str, Any] = {prefix: share(keeps),
                         f"{prefix}_positions": int(keeps.shape[0])}
  for i, (name, _, _) in enumerate(PHASES):
    out[f"{prefix}_{name}"] = share(keeps[phases == i])
  out[f"{prefix}_critical"] = share(keeps[hard])
  out[f"{prefix}_critical_positions"] = int(np.sum(hard))
  return out


def move_accuracy(opponent, env, num: int, seed: int = 0,
                  prefix: str = "solver_accuracy") -> Dict[str, Any]:
  """``opponent``'s move accuracy on the first ``num`` positions of the
  set of ``seed`` (:func:`accuracy_report`'s entries)."""
  solver_lib.check_env(env)
  positions = solved_positions(num, seed)
  actions = chosen_moves(opponent, positions, states_of(env, positions),
                         seed)
  return accuracy_report(keeps_outcome(positions.scores, actions),
                         positions.stones, critical(positions.scores),
                         prefix)


def format_accuracy(results: Dict[str, Any], label: str,
                    prefix: str = "solver_accuracy") -> str:
  """One line of ``results``' move accuracy (``<prefix>...`` entries), by
  phase; empty if ``results`` has none."""
  if prefix not in results:
    return ""
  groups = ", ".join(
      f"{name} {results[f'{prefix}_{name}']:.3f}"
      for name in [p[0] for p in PHASES] + ["critical"]
      if results.get(f"{prefix}_{name}") is not None)
  return (f"{label}: move accuracy {results[prefix]:.3f} on "
          f"{results[f'{prefix}_positions']} solved positions ({groups}; "
          f"{results.get(f'{prefix}_critical_positions')} critical)")
