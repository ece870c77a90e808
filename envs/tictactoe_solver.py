"""Perfect-play tic-tac-toe solver (negamax over every reachable position).

Boards use the :mod:`envs.tictactoe` encoding: a length-9 sequence, cell
``i`` = row ``i // 3``, column ``i % 3``; ``0`` empty, ``1`` = X (player 0,
moves first), ``2`` = O (player 1). The player to move is implied by the
board (X iff both have the same number of stones). A board's table index is
its base-3 encoding ``sum(board[i] * 3**i)`` in ``[0, 3**9)``.

Values are game-theoretic, from the point of view of the player to move:
``+1`` win, ``0`` draw, ``-1`` loss, under perfect play by both sides (no
preference for faster wins). A move is *optimal* if its value
(``-value(child)``) equals the position's value.

Python API (memoized; the whole game is solved once, lazily, in well under
a second):

* ``solve(board) -> (value, optimal_moves)`` for a reachable board; at a
  terminal board the value is -1 (the last mover won) or 0 (draw) and
  ``optimal_moves`` is empty. ``value(board)``, ``optimal_moves(board)`` and
  ``action_values(board)`` are shortcuts.
* ``tables() -> SolverTables`` numpy arrays over all 3**9 indices.
* ``jax_tables()`` the same as ``jax.numpy`` arrays (created once).

JAX API (jittable, vmappable):

* ``board_index(board) -> int32`` base-3 index of an int board ``[9]``.
* ``perfect_value(board) -> float32`` value for the player to move.
* ``perfect_action(key, board) -> int32`` uniformly random optimal move; at
  terminal or unreachable boards it falls back to a random empty cell (or 0
  on a full board), so it can be used in lock-step batched loops.
* ``optimal_action_mask(board) -> bool [9]``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

NUM_CELLS = 9
NUM_BOARDS = 3 ** NUM_CELLS  # 19683
ILLEGAL = -2  # action_values entry for occupied cells / terminal boards.
POWERS = 3 ** np.arange(NUM_CELLS, dtype=np.int32)
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8),
         (0, 4, 8), (2, 4, 6))
EMPTY_BOARD = (0,) * NUM_CELLS

Board = Tuple[int, ...]


class SolverTables(NamedTuple):
  """Tables indexed by the base-3 board index (see module docstring)."""
  values: np.ndarray          # int8 [3**9]: value for the player to move.
  action_values: np.ndarray   # int8 [3**9, 9]: value of each move for the
                              #   mover; ILLEGAL (-2) if occupied / terminal.
  optimal_mask: np.ndarray    # bool [3**9, 9]: optimal moves (all False at
                              #   terminal and unreachable boards).
  reachable: np.ndarray       # bool [3**9]: reachable from the empty board.
  terminal: np.ndarray        # bool [3**9]: reachable and game over.


def encode(board: Sequence[int]) -> int:
  """Base-3 index of a board."""
  return int(np.dot(np.asarray(board, np.int64).reshape(NUM_CELLS), POWERS))


def decode(index: int) -> Board:
  """Inverse of :func:`encode`."""
  cells = []
  for _ in range(NUM_CELLS):
    index, r = divmod(int(index), 3)
    cells.append(r)
  return tuple(cells)


def piece_to_move(board: Board) -> int:
  """1 (X) if both players have the same number of stones, else 2 (O)."""
  return 1 if board.count(1) == board.count(2) else 2


def line_owner(board: Board) -> int:
  """The piece (1 or 2) owning a complete line, or 0 if none."""
  for a, b, c in LINES:
    if board[a] != 0 and board[a] == board[b] == board[c]:
      return board[a]
  return 0


def is_terminal(board: Board) -> bool:
  return line_owner(board) != 0 or 0 not in board


@functools.lru_cache(maxsize=None)
def _negamax(board: Board) -> int:
  """Value for the player to move of a reachable board."""
  if line_owner(board) != 0:
    return -1  # The previous mover completed a line.
  if 0 not in board:
    return 0
  piece = piece_to_move(board)
  best = -2
  for a in range(NUM_CELLS):
    if board[a] == 0:
      child = board[:a] + (piece,) + board[a + 1:]
      best = max(best, -_negamax(child))
  return best


@functools.lru_cache(maxsize=1)
def reachable_boards() -> frozenset:
  """All boards reachable from the empty board by legal play."""
  seen = set()
  stack = [EMPTY_BOARD]
  while stack:
    board = stack.pop()
    if board in seen:
      continue
    seen.add(board)
    if is_terminal(board):
      continue
    piece = piece_to_move(board)
    for a in range(NUM_CELLS):
      if board[a] == 0:
        stack.append(board[:a] + (piece,) + board[a + 1:])
  return frozenset(seen)


def _as_board(board: Sequence[int]) -> Board:
  b = tuple(int(v) for v in np.asarray(board).reshape(-1))
  if len(b) != NUM_CELLS or any(v not in (0, 1, 2) for v in b):
    raise ValueError(f"A board is 9 cells in {{0, 1, 2}}, got {board!r}")
  if b not in reachable_boards():
    raise ValueError(f"Board {b} is not reachable by legal play")
  return b


def action_values(board: Sequence[int]) -> Tuple[int, ...]:
  """Value of each move for the mover; ILLEGAL for occupied/terminal."""
  b = _as_board(board)
  if is_terminal(b):
    return (ILLEGAL,) * NUM_CELLS
  piece = piece_to_move(b)
  return tuple(
      -_negamax(b[:a] + (piece,) + b[a + 1:]) if b[a] == 0 else ILLEGAL
      for a in range(NUM_CELLS))


@functools.lru_cache(maxsize=None)
def _solve(b: Board) -> Tuple[int, Tuple[int, ...]]:
  v = _negamax(b)
  q = action_values(b)
  return v, tuple(a for a in range(NUM_CELLS) if q[a] == v and q[a] != ILLEGAL)


def solve(board: Sequence[int]) -> Tuple[int, Tuple[int, ...]]:
  """(value for the player to move, optimal moves) of a reachable board."""
  return _solve(_as_board(board))


def value(board: Sequence[int]) -> int:
  return solve(board)[0]


def optimal_moves(board: Sequence[int]) -> Tuple[int, ...]:
  return solve(board)[1]


@functools.lru_cache(maxsize=1)
def tables() -> SolverTables:
  """Numpy tables over every base-3 index (built once)."""
  values = np.zeros(NUM_BOARDS, np.int8)
  q = np.full((NUM_BOARDS, NUM_CELLS), ILLEGAL, np.int8)
  optimal = np.zeros((NUM_BOARDS, NUM_CELLS), np.bool_)
  reachable = np.zeros(NUM_BOARDS, np.bool_)
  terminal = np.zeros(NUM_BOARDS, np.bool_)
  for b in reachable_boards():
    i = encode(b)
    v, moves = _solve(b)
    values[i] = v
    q[i] = action_values(b)
    optimal[i, list(moves)] = True
    reachable[i] = True
    terminal[i] = is_terminal(b)
  for arr in (values, q, optimal, reachable, terminal):
    arr.setflags(write=False)
  return SolverTables(values, q, optimal, reachable, terminal)


@functools.lru_cache(maxsize=1)
def jax_tables() -> SolverTables:
  """:func:`tables` as jax arrays (device-resident, created once).

  Built with compile-time evaluation, so that a first call inside `jit`
  caches concrete arrays rather than tracers.
  """
  with jax.ensure_compile_time_eval():
    return SolverTables(*(jnp.asarray(t) for t in tables()))


# ----------------------------------------------------------------------------
# Jittable helpers.


def board_index(board: jax.Array) -> jax.Array:
  """int32 base-3 index of an int board ``[9]`` (or ``[3, 3]``)."""
  board = jnp.asarray(board).reshape(NUM_CELLS).astype(jnp.int32)
  return jnp.sum(board * jnp.asarray(POWERS)).astype(jnp.int32)


def perfect_value(board: jax.Array) -> jax.Array:
  """float32 game-theoretic value for the player to move."""
  return jax_tables().values[board_index(board)].astype(jnp.float32)


def optimal_action_mask(board: jax.Array) -> jax.Array:
  """bool [9] optimal moves (all False at terminal/unreachable boards)."""
  return jax_tables().optimal_mask[board_index(board)]


def perfect_action(key: jax.Array, board: jax.Array) -> jax.Array:
  """A uniformly random optimal move (int32); see module docstring."""
  board = jnp.asarray(board).reshape(NUM_CELLS)
  mask = optimal_action_mask(board)
  empty = board == 0
  mask = jnp.where(jnp.any(mask), mask, empty)
  noise = jax.random.uniform(key, (NUM_CELLS,))
  return jnp.argmax(jnp.where(mask, noise, -1.0)).astype(jnp.int32)
