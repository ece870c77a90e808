"""Connect Four (6 rows x 7 columns) in pure JAX (see :mod:`envs.base`).

Board: int32 ``[6, 7]``, row 0 is the TOP row, pieces fall to the lowest
empty row of the chosen column; ``0`` empty, ``1`` = player 0 (moves first),
``2`` = player 1. Action ``c`` in ``[0, 7)`` drops a piece in column ``c``;
legal iff the column is not full. Four in a row (horizontal, vertical or
either diagonal) wins; a full board without a win is a draw. Observation:
float32 ``[6, 7, 2]`` (plane 0 = pieces of the player to move, plane 1 =
opponent pieces).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from envs import base
from envs.tictactoe import _status

ROWS = 6
COLUMNS = 7


def _windows(rows: int, cols: int, length: int = 4) -> np.ndarray:
  """All straight windows of ``length`` cells, as flat indices [W, length]."""
  out = []
  for r in range(rows):
    for c in range(cols):
      for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        cells = [(r + k * dr, c + k * dc) for k in range(length)]
        if all(0 <= rr < rows and 0 <= cc < cols for rr, cc in cells):
          out.append([rr * cols + cc for rr, cc in cells])
  return np.array(out, dtype=np.int32)


WINDOWS = _windows(ROWS, COLUMNS)  # [69, 4]


class Connect4State(NamedTuple):
  observation: jax.Array        # float32 [6, 7, 2]
  reward: jax.Array             # float32 []
  rewards: jax.Array            # float32 [2]
  terminated: jax.Array         # bool []
  current_player: jax.Array     # int32 []
  legal_action_mask: jax.Array  # bool [7]
  step_count: jax.Array         # int32 []
  board: jax.Array              # int32 [6, 7]; row 0 = top
  winner: jax.Array             # int32 []: -1 none / draw, else winning player


def _observe(board: jax.Array, player: jax.Array) -> jax.Array:
  own = board == player + 1
  opp = board == 2 - player
  return jnp.stack([own, opp], axis=-1).astype(jnp.float32)


def has_won(board: jax.Array, piece) -> jax.Array:
  """Whether ``piece`` (1 or 2) has four in a row on a ``[6, 7]`` board."""
  flat = board.reshape(-1)
  return jnp.any(jnp.all(flat[WINDOWS] == piece, axis=-1))


@dataclasses.dataclass(frozen=True)
class Connect4:
  """Connect Four. Player 0 always moves first; ``init`` ignores its key."""

  name: str = dataclasses.field(default="connect4", init=False)
  num_actions: int = dataclasses.field(default=COLUMNS, init=False)
  observation_shape: Tuple[int, ...] = dataclasses.field(
      default=(ROWS, COLUMNS, 2), init=False)
  num_players: int = dataclasses.field(default=2, init=False)
  max_episode_steps: Optional[int] = dataclasses.field(
      default=ROWS * COLUMNS, init=False)
  # Column c <-> column 6 - c.
  mirror: base.Mirror = dataclasses.field(
      default=base.Mirror(axis=-2, actions=tuple(range(COLUMNS))[::-1]),
      init=False)

  def init(self, key: jax.Array) -> Connect4State:
    del key  # Deterministic start.
    board = jnp.zeros((ROWS, COLUMNS), jnp.int32)
    player = jnp.int32(0)
    return Connect4State(
        observation=_observe(board, player),
        reward=jnp.float32(0.0),
        rewards=jnp.zeros(2, jnp.float32),
        terminated=jnp.bool_(False),
        current_player=player,
        legal_action_mask=jnp.ones(COLUMNS, jnp.bool_),
        step_count=jnp.int32(0),
        board=board,
        winner=jnp.int32(-1),
    )

  def step(self, state: Connect4State, action: jax.Array) -> Connect4State:
    action = base.as_action(action)
    in_range = (action >= 0) & (action < COLUMNS)
    col = jnp.clip(action, 0, COLUMNS - 1)
    legal = in_range & state.legal_action_mask[col]
    mover = state.current_player
    piece = mover + 1
    # Lowest empty row of the column (rows are counted from the top).
    row = jnp.sum(state.board[:, col] == 0) - 1
    board = jnp.where(legal, state.board.at[row, col].set(piece), state.board)
    won = legal & has_won(board, piece)
    full = jnp.all(board[0] != 0)
    terminated = (~legal) | won | full
    reward = jnp.where(~legal, -1.0, jnp.where(won, 1.0, 0.0)).astype(jnp.float32)
    next_player = 1 - mover
    winner = jnp.where(won, mover, jnp.where(~legal, next_player, -1))
    new_state = Connect4State(
        observation=_observe(board, next_player),
        reward=reward,
        rewards=base.two_player_rewards(mover, reward),
        terminated=terminated,
        current_player=next_player.astype(jnp.int32),
        legal_action_mask=base.legal_or_all(terminated, board[0] == 0),
        step_count=state.step_count + 1,
        board=board,
        winner=winner.astype(jnp.int32),
    )
    return base.noop_if_terminated(state, new_state)

  def render(self, state: Connect4State) -> str:
    board = np.asarray(state.board)
    sym = {0: ".", 1: "X", 2: "O"}
    rows = [" ".join(sym[int(v)] for v in row) for row in board]
    footer = " ".join(str(c) for c in range(COLUMNS))
    return "\n".join(rows + [footer, _status(state, ["X", "O"])])
