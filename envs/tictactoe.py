"""3x3 tic-tac-toe in pure JAX (see :mod:`envs.base` for the protocol).

Board: int32 ``[9]``, cell ``i`` is row ``i // 3``, column ``i % 3``;
``0`` empty, ``1`` = player 0 (X, moves first), ``2`` = player 1 (O). This is
the same encoding as :mod:`envs.tictactoe_solver` (base-3 index
``sum(board[i] * 3**i)``). Action ``a`` in ``[0, 9)`` places a stone on cell
``a``. Observation: float32 ``[3, 3, 2]`` (plane 0 = stones of the player to
move, plane 1 = opponent stones).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from envs import base

# The 8 winning lines, as flat cell indices.
LINES = np.array([
    [0, 1, 2], [3, 4, 5], [6, 7, 8],  # rows
    [0, 3, 6], [1, 4, 7], [2, 5, 8],  # columns
    [0, 4, 8], [2, 4, 6],             # diagonals
], dtype=np.int32)


class TicTacToeState(NamedTuple):
  observation: jax.Array        # float32 [3, 3, 2]
  reward: jax.Array             # float32 []
  rewards: jax.Array            # float32 [2]
  terminated: jax.Array         # bool []
  current_player: jax.Array     # int32 []
  legal_action_mask: jax.Array  # bool [9]
  step_count: jax.Array         # int32 []
  board: jax.Array              # int32 [9]: 0 empty, 1 player 0 (X), 2 player 1 (O)
  winner: jax.Array             # int32 []: -1 none / draw, else winning player


def _observe(board: jax.Array, player: jax.Array) -> jax.Array:
  own = board == player + 1
  opp = board == 2 - player
  return jnp.stack([own, opp], axis=-1).astype(jnp.float32).reshape(3, 3, 2)


def has_won(board: jax.Array, piece) -> jax.Array:
  """Whether ``piece`` (1 or 2) has three in a row on a ``[9]`` board."""
  return jnp.any(jnp.all(board[LINES] == piece, axis=-1))


@dataclasses.dataclass(frozen=True)
class TicTacToe:
  """Tic-tac-toe. Player 0 (X) always moves first; ``init`` ignores its key."""

  name: str = dataclasses.field(default="tictactoe", init=False)
  num_actions: int = dataclasses.field(default=9, init=False)
  observation_shape: Tuple[int, ...] = dataclasses.field(
      default=(3, 3, 2), init=False)
  num_players: int = dataclasses.field(default=2, init=False)
  max_episode_steps: Optional[int] = dataclasses.field(default=9, init=False)
  # Cell (r, c) <-> cell (r, 2 - c).
  mirror: base.Mirror = dataclasses.field(
      default=base.Mirror(axis=-2, actions=tuple(
          3 * r + 2 - c for r in range(3) for c in range(3))), init=False)

  def init(self, key: jax.Array) -> TicTacToeState:
    del key  # Deterministic start.
    board = jnp.zeros(9, jnp.int32)
    player = jnp.int32(0)
    return TicTacToeState(
        observation=_observe(board, player),
        reward=jnp.float32(0.0),
        rewards=jnp.zeros(2, jnp.float32),
        terminated=jnp.bool_(False),
        current_player=player,
        legal_action_mask=jnp.ones(9, jnp.bool_),
        step_count=jnp.int32(0),
        board=board,
        winner=jnp.int32(-1),
    )

  def step(self, state: TicTacToeState, action: jax.Array) -> TicTacToeState:
    action = base.as_action(action)
    in_range = (action >= 0) & (action < 9)
    a = jnp.clip(action, 0, 8)
    legal = in_range & state.legal_action_mask[a]
    mover = state.current_player
    piece = mover + 1
    board = jnp.where(legal, state.board.at[a].set(piece), state.board)
    won = legal & has_won(board, piece)
    full = jnp.all(board != 0)
    terminated = (~legal) | won | full
    reward = jnp.where(~legal, -1.0, jnp.where(won, 1.0, 0.0)).astype(jnp.float32)
    next_player = 1 - mover
    winner = jnp.where(won, mover, jnp.where(~legal, next_player, -1))
    new_state = TicTacToeState(
        observation=_observe(board, next_player),
        reward=reward,
        rewards=base.two_player_rewards(mover, reward),
        terminated=terminated,
        current_player=next_player.astype(jnp.int32),
        legal_action_mask=base.legal_or_all(terminated, board == 0),
        step_count=state.step_count + 1,
        board=board,
        winner=winner.astype(jnp.int32),
    )
    return base.noop_if_terminated(state, new_state)

  def render(self, state: TicTacToeState) -> str:
    board = np.asarray(state.board).reshape(3, 3)
    sym = {0: ".", 1: "X", 2: "O"}
    rows = [" ".join(sym[int(v)] for v in row) for row in board]
    status = _status(state, ["X", "O"])
    return "\n".join(rows + [status])


def _status(state, names) -> str:
  player = int(state.current_player)
  if bool(state.terminated):
    winner = int(state.winner)
    result = "draw" if winner < 0 else f"{names[winner]} wins"
    return f"terminated ({result})"
  return f"{names[player]} (player {player}) to move"
