"""A perfect Connect Four solver, ``bitbully`` (C++, with an opening book),
seen from our Connect Four (:mod:`envs.connect4`).

``bitbully`` (``pip install bitbully``, imported lazily by
:func:`import_bitbully`) is an OPTIONAL dependency. Positions map one to one:
our board is ``[6, 7]`` with row 0 at the top, ``1`` for player 0 (who moves
first) and ``2`` for player 1; bitbully's column-major layout is ``[7, 6]``,
column 0 on the left and each column from the bottom up, with the same
``1`` / ``2``. Column ``c`` is action ``c`` in both. bitbully derives the
player to move from the number of stones, as our env does (player 0 moves
after an even number); :func:`to_board` checks it.

A move's *score* (:meth:`Solver.scores`) is bitbully's, from the point of
view of the player who moves: positive wins (the larger, the sooner),
``0`` draws, negative loses (the smaller, the sooner); its sign is the
move's *solved outcome*.
"""
from __future__ import annotations

import functools
import random
from typing import Optional

import numpy as np

from envs import connect4

_INSTALL_HINT = ("the Connect Four solver needs bitbully (the optional "
                 "dependency: `pip install bitbully`, or the `bitbully` "
                 "extra)")

# The score given to a full column (not a legal move) in score arrays.
ILLEGAL = -1000


def import_bitbully():
  """Imports bitbully, or raises an ImportError telling how to install it."""
  try:
    import bitbully  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(_INSTALL_HINT) from e
  return bitbully


def available() -> bool:
  """Whether bitbully can be imported here."""
  try:
    import_bitbully()
  except ImportError:
    return False
  return True


def check_env(env) -> None:
  """Raises ValueError unless ``env`` is Connect Four."""
  if env.name != "connect4":
    raise ValueError(f"the perfect solver plays connect4 only, not "
                     f"{env.name}")


def to_board(board, current_player: Optional[int] = None):
  """bitbully's ``Board`` of one of our Connect Four boards (int ``[6, 7]``,
  row 0 on top). ``current_player`` (0 or 1), if given, must be the one
  bitbully derives from the number of stones, else ValueError."""
  bb = import_bitbully()
  board = np.asarray(board)
  if board.shape != (connect4.ROWS, connect4.COLUMNS):
    raise ValueError(f"board: expected a Connect Four board of shape "
                     f"[{connect4.ROWS}, {connect4.COLUMNS}], got "
                     f"{board.shape}")
  # Columns from the left, each from the bottom row up.
  out = bb.Board(board[::-1].T.tolist())
  if current_player is not None and out.current_player() != current_player + 1:
    raise ValueError(f"player {current_player} is to move, but the board "
                     f"has {out.count_tokens()} stones (bitbully: player "
                     f"{out.current_player() - 1})")
  return out


class Solver:
  """bitbully's solver with its default opening book (12 plies, with the
  distances to the end): :meth:`scores` of every move of a position and a
  :meth:`best_move` drawn uniformly among the best scores."""

  def __init__(self):
    bb = import_bitbully()
    self.engine = bb.BitBully(opening_book="default")

  def scores(self, board, current_player: Optional[int] = None
             ) -> np.ndarray:
    """int32 ``[7]``: the score of each column of ``board`` (our ``[6, 7]``
    layout), :data:`ILLEGAL` for a full one."""
    scores = self.engine.score_all_moves(to_board(board, current_player))
    out = np.full(connect4.COLUMNS, ILLEGAL, np.int32)
    for column, score in scores.items():
      out[column] = score
    return out

  def best_move(self, board, rng: random.Random,
                current_player: Optional[int] = None) -> int:
    """A uniformly random best move (by exact score: the fastest win, the
    slowest loss) of ``board``, drawn with ``rng``."""
    return int(self.engine.best_move(to_board(board, current_player),
                                     tie_break="random", rng=rng))


@functools.lru_cache(maxsize=1)
def shared_solver() -> Solver:
  """One :class:`Solver` per process (loading the opening book takes a
  fraction of a second; the solver keeps no state between positions that
  changes a result)."""
  return Solver()
