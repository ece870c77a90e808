"""2048 (Gabriele Cirulli's game) in pure JAX (see :mod:`envs.base`).

Board: int32 ``[4, 4]`` of tile exponents, row 0 at the top: ``0`` is an
empty cell, ``e > 0`` a tile of value ``2**e``. Actions: ``0`` up, ``1``
right, ``2`` down, ``3`` left. A move happens in two parts:

1. the *slide* (deterministic): every row or column slides toward the move's
   direction, and two equal tiles that meet merge into one of twice the value;
   each tile merges at most once per move, the pair nearest the wall first
   (``[2, 2, 2, 2]`` left gives ``[4, 4, 0, 0]``). The board after the slide
   is the *afterstate*; the reward is the sum of the merged tiles' new values.
2. the *chance* outcome: a tile ``2`` (probability 0.9) or ``4`` (0.1)
   appears in a uniformly random empty cell of the afterstate.

A move is legal iff its slide changes the board; the game ends when no move
is legal (after the spawn). An illegal (or out-of-range) action ends the game
with reward -1, as in pgx. The game starts with two spawned tiles. Every
random draw comes from the state's ``rng_key`` (split from the ``init`` key),
so a game is a pure function of its key and its actions.

The chance outcome is exposed as ``outcome = 2 * cell + (exponent - 1)``
(``cell = 4 * row + column``; ``NUM_OUTCOMES = 32``): :func:`slide`,
:func:`spawn` and :func:`draw_outcome` are the two parts of ``step`` as pure
functions, and ``state.chance_outcome`` is the outcome that made the state.

Observation: float32 ``[4, 4, 18]``, a one-hot of each cell's exponent
(``0..17``; 2**17 is the largest tile a 4x4 board can reach). Single player;
``score`` accumulates the rewards of the game.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from envs import base

SIZE = 4
NUM_CELLS = SIZE * SIZE
NUM_EXPONENTS = 18          # 0 (empty) .. 17 (131072).
NUM_OUTCOMES = 2 * NUM_CELLS
FOUR_PROBABILITY = 0.1
ACTION_NAMES = ("up", "right", "down", "left")


class Game2048State(NamedTuple):
  observation: jax.Array        # float32 [4, 4, 18]
  reward: jax.Array             # float32 []
  rewards: jax.Array            # float32 [1]
  terminated: jax.Array         # bool []
  current_player: jax.Array     # int32 [], always 0
  legal_action_mask: jax.Array  # bool [4]
  step_count: jax.Array         # int32 []
  board: jax.Array              # int32 [4, 4]: tile exponents, 0 = empty
  score: jax.Array              # float32 []: sum of this game's rewards
  chance_outcome: jax.Array     # int32 []: 2 * cell + exponent - 1; -1 at init
  rng_key: jax.Array            # the key of the next spawn


def _compress_left(rows: jax.Array) -> jax.Array:
  """Moves the tiles of each row of ``rows [4, 4]`` to the left, in order."""
  filled = rows != 0
  target = jnp.cumsum(filled, axis=1) - 1                     # [4, 4]
  moves = filled[..., None] & (target[..., None] == jnp.arange(SIZE))
  return jnp.sum(jnp.where(moves, rows[..., None], 0), axis=1)


def _slide_rows_left(rows: jax.Array):
  """Slides and merges each row of ``rows [4, 4]`` toward column 0;
  ``(rows, reward)``."""
  rows = _compress_left(rows)
  cols = [rows[:, 0]]
  reward = jnp.zeros((), jnp.int32)
  # Left to right: a tile equal to its left neighbour merges into it and
  # leaves a 0 there, so that the merged tile cannot merge again.
  for i in range(1, SIZE):
    merge = (rows[:, i] != 0) & (rows[:, i] == cols[-1])
    cols[-1] = jnp.where(merge, cols[-1] + 1, cols[-1])
    reward = reward + jnp.sum(jnp.where(merge, 2 ** (rows[:, i] + 1), 0))
    cols.append(jnp.where(merge, 0, rows[:, i]))
  return _compress_left(jnp.stack(cols, axis=1)), reward


def _to_left(board: jax.Array, action: jax.Array) -> jax.Array:
  """The board seen so that ``action`` slides toward column 0."""
  views = jnp.stack([board.T, board[:, ::-1], board.T[:, ::-1], board])
  return views[action]


def _from_left(view: jax.Array, action: jax.Array) -> jax.Array:
  """The inverse of :func:`_to_left`."""
  boards = jnp.stack([view.T, view[:, ::-1], view[:, ::-1].T, view])
  return boards[action]


def slide(board: jax.Array, action: jax.Array):
  """The deterministic part of a move.

  Args:
    board: int32 ``[4, 4]`` exponents.
    action: int32 scalar in ``[0, 4)`` (up, right, down, left).

  Returns:
    ``(afterstate [4, 4], reward float32 [], changed bool [])``.
  """
  rows, reward = _slide_rows_left(_to_left(board, action))
  after = _from_left(rows, action)
  return after, reward.astype(jnp.float32), jnp.any(after != board)


def legal_moves(board: jax.Array) -> jax.Array:
  """bool ``[4]``: the moves whose slide changes ``board``: those where a
  tile has an empty cell or an equal tile on its side of the move."""
  views = jax.vmap(_to_left, (None, 0))(board, jnp.arange(4))  # [4, 4, 4]
  left, right = views[..., :-1], views[..., 1:]
  movable = (right != 0) & ((left == 0) | (left == right))
  return jnp.any(movable, axis=(1, 2))


def spawn(board: jax.Array, outcome: jax.Array) -> jax.Array:
  """Places the tile of chance ``outcome`` (``2 * cell + exponent - 1``)."""
  cell, exponent = outcome // 2, outcome % 2 + 1
  return board.reshape(-1).at[cell].set(exponent).reshape(SIZE, SIZE)


def outcome_probs(board: jax.Array) -> jax.Array:
  """float32 ``[32]``: the probability of each chance outcome on ``board``
  (uniform over empty cells; a 2 with 0.9, a 4 with 0.1)."""
  empty = (board.reshape(-1) == 0).astype(jnp.float32)
  cell = empty / jnp.maximum(jnp.sum(empty), 1.0)
  tile = jnp.array([1.0 - FOUR_PROBABILITY, FOUR_PROBABILITY])
  return (cell[:, None] * tile[None, :]).reshape(-1)


def draw_outcome(key: jax.Array, board: jax.Array) -> jax.Array:
  """int32: a chance outcome drawn from :func:`outcome_probs` (``board``
  must have an empty cell): the ``k``-th empty cell for ``k`` uniform, a 4
  with probability 0.1, from one draw of two uniforms."""
  u = jax.random.uniform(key, (2,))
  empty = board.reshape(-1) == 0
  num_empty = jnp.sum(empty)
  k = jnp.minimum(jnp.floor(u[0] * num_empty).astype(jnp.int32),
                  num_empty - 1)
  cell = jnp.argmax(jnp.cumsum(empty) > k)
  four = u[1] < FOUR_PROBABILITY
  return (2 * cell + four).astype(jnp.int32)


def observe(board: jax.Array) -> jax.Array:
  return jax.nn.one_hot(board, NUM_EXPONENTS, dtype=jnp.float32)


def largest_tile(board: jax.Array) -> jax.Array:
  """int32: the value of the largest tile of ``board [..., 4, 4]``."""
  exponent = jnp.max(board, axis=(-2, -1))
  return jnp.where(exponent > 0, 2 ** exponent, 0).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class Game2048:
  """2048 on a 4x4 board (see the module docstring)."""

  name: str = dataclasses.field(default="2048", init=False)
  num_actions: int = dataclasses.field(default=4, init=False)
  observation_shape: Tuple[int, ...] = dataclasses.field(
      default=(SIZE, SIZE, NUM_EXPONENTS), init=False)
  num_players: int = dataclasses.field(default=1, init=False)
  # Games are finite (each move adds 2 or 4 to the tiles' sum) but the bound
  # is far above any real game's length.
  max_episode_steps: Optional[int] = dataclasses.field(default=None,
                                                       init=False)
  num_chance_outcomes: int = dataclasses.field(default=NUM_OUTCOMES,
                                               init=False)

  def init(self, key: jax.Array) -> Game2048State:
    key, first, second = jax.random.split(key, 3)
    board = jnp.zeros((SIZE, SIZE), jnp.int32)
    board = spawn(board, draw_outcome(first, board))
    return self.from_board(spawn(board, draw_outcome(second, board)), key)

  def from_board(self, board: jax.Array, key: jax.Array) -> Game2048State:
    """A game starting at ``board`` (int32 ``[4, 4]`` exponents), its spawns
    drawn from ``key``."""
    board = jnp.asarray(board, jnp.int32).reshape(SIZE, SIZE)
    mask = legal_moves(board)
    terminated = ~jnp.any(mask)
    return Game2048State(
        observation=observe(board),
        reward=jnp.float32(0.0),
        rewards=jnp.zeros(1, jnp.float32),
        terminated=terminated,
        current_player=jnp.int32(0),
        legal_action_mask=base.legal_or_all(terminated, mask),
        step_count=jnp.int32(0),
        board=board,
        score=jnp.float32(0.0),
        chance_outcome=jnp.int32(-1),
        rng_key=key,
    )

  def step(self, state: Game2048State, action: jax.Array) -> Game2048State:
    after, reward, legal = self._slide(state, action)
    key, draw_key = jax.random.split(state.rng_key)
    return self._finish(state, after, reward, legal,
                        draw_outcome(draw_key, after), key)

  def step_with_outcome(self, state: Game2048State, action: jax.Array,
                        outcome: jax.Array) -> Game2048State:
    """``step`` with the chance ``outcome`` given instead of drawn (it must
    name an empty cell of the afterstate)."""
    after, reward, legal = self._slide(state, action)
    return self._finish(state, after, reward, legal,
                        jnp.asarray(outcome, jnp.int32),
                        jax.random.split(state.rng_key)[0])

  def _slide(self, state, action):
    action = base.as_action(action)
    after, reward, changed = slide(state.board, jnp.clip(action, 0, 3))
    return after, reward, (action >= 0) & (action < 4) & changed

  def _finish(self, state, after, reward, legal, outcome, key):
    board = jnp.where(legal, spawn(after, outcome), state.board)
    mask = legal_moves(board)
    terminated = (~legal) | ~jnp.any(mask)
    reward = jnp.where(legal, reward, -1.0).astype(jnp.float32)
    new_state = state._replace(
        observation=observe(board),
        reward=reward,
        rewards=reward[None],
        terminated=terminated,
        legal_action_mask=base.legal_or_all(terminated, mask),
        step_count=state.step_count + 1,
        board=board,
        score=state.score + jnp.where(legal, reward, 0.0),
        chance_outcome=jnp.where(legal, outcome, -1),
        rng_key=key,
    )
    return base.noop_if_terminated(state, new_state)

  def largest_tile(self, state: Game2048State) -> jax.Array:
    """int32 ``[...]``: the value of each state's largest tile."""
    return largest_tile(state.board)

  def render(self, state: Game2048State) -> str:
    board = np.asarray(state.board)
    rows = [" ".join(f"{(2 ** int(e)) if e else '.':>5}" for e in row)
            for row in board]
    status = "game over" if bool(state.terminated) else (
        "moves: " + ", ".join(
            f"{a}={n}" for a, n in enumerate(ACTION_NAMES)
            if bool(state.legal_action_mask[a])))
    rows.append(f"score {float(state.score):.0f}, step "
                f"{int(state.step_count)}; {status}")
    return "\n".join(rows)
