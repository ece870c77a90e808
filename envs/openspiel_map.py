"""The board games of :mod:`envs` that OpenSpiel also has, mapped move by move.

OpenSpiel (``pip install open_spiel``, imported lazily) is an OPTIONAL
dependency; it gives us outside opponents such as its C++ ``MCTSBot``.

=============  ================  =========================================
ours           OpenSpiel         action
=============  ================  =========================================
``tictactoe``  ``tic_tac_toe``   cell ``row * 3 + column``, in both
``connect4``   ``connect_four``  column ``0..6``, in both
=============  ================  =========================================

So an action means the same move in both libraries (:func:`to_openspiel_action`
is the identity, kept as the one place to change if that ever differs), and
player 0 (``x``, our ``1``) moves first in both. A position is mapped by
replaying its moves; :func:`mismatches` compares a position of ours with
OpenSpiel's (board, player to move, legal moves, end of game, winner), so a
mapping error shows up as a named difference rather than a wrong score.
"""

from __future__ import annotations

from typing import Any, List

import numpy as np

GAMES = {"tictactoe": "tic_tac_toe", "connect4": "connect_four"}

_INSTALL_HINT = ("OpenSpiel is not installed (the optional dependency "
                 "open_spiel: `pip install open_spiel`)")

# OpenSpiel's text board: rows from the top, "x" = player 0, "o" = player 1.
_PIECES = {".": 0, "x": 1, "o": 2}


def import_pyspiel():
  """Imports pyspiel, or raises an ImportError telling how to install it."""
  try:
    import pyspiel  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(_INSTALL_HINT) from e
  return pyspiel


def available() -> bool:
  """Whether OpenSpiel can be imported here."""
  try:
    import_pyspiel()
  except ImportError:
    return False
  return True


def has_game(env_name: str) -> bool:
  return env_name in GAMES


def load_game(env_name: str):
  """OpenSpiel's game for our ``env_name`` (raises ValueError if none)."""
  if env_name not in GAMES:
    raise ValueError(f"env_name: OpenSpiel has no game mapped to "
                     f"{env_name!r}; mapped games: {', '.join(GAMES)}")
  return import_pyspiel().load_game(GAMES[env_name])


def to_openspiel_action(env_name: str, action: int) -> int:
  """OpenSpiel's action for our ``action`` (the same number, see above)."""
  del env_name
  return int(action)


def board(os_state) -> np.ndarray:
  """int32 board of an OpenSpiel state in OUR encoding (0 empty, 1 player 0,
  2 player 1; rows from the top): ``[9]`` for tic-tac-toe, ``[6, 7]`` for
  Connect Four."""
  rows = [line.strip() for line in str(os_state).strip().splitlines()]
  cells = np.array([[_PIECES[c] for c in row] for row in rows], np.int32)
  return cells.reshape(-1) if cells.shape == (3, 3) else cells


def winner(os_state) -> int:
  """-1 (no winner yet, or a draw), else the winning player."""
  if not os_state.is_terminal():
    return -1
  returns = os_state.returns()
  return int(np.argmax(returns)) if max(returns) > 0 else -1


def mismatches(state: Any, os_state) -> List[str]:
  """How ONE (unbatched) state of ours differs from ``os_state``; empty if
  they are the same position.

  ``state``: a ``TicTacToeState`` or ``Connect4State`` (numpy or jax leaves).
  """
  out = []
  ours = np.asarray(state.board)
  theirs = board(os_state)
  if ours.shape != theirs.shape or np.any(ours != theirs):
    out.append(f"board: ours {ours.tolist()}, OpenSpiel {theirs.tolist()}")
  terminated = bool(state.terminated)
  if terminated != os_state.is_terminal():
    out.append(f"terminated: ours {terminated}, OpenSpiel "
               f"{os_state.is_terminal()}")
  if int(state.winner) != winner(os_state):
    out.append(f"winner: ours {int(state.winner)}, OpenSpiel "
               f"{winner(os_state)}")
  if not terminated and not os_state.is_terminal():
    if int(state.current_player) != os_state.current_player():
      out.append(f"player to move: ours {int(state.current_player)}, "
                 f"OpenSpiel {os_state.current_player()}")
    legal = np.flatnonzero(np.asarray(state.legal_action_mask)).tolist()
    if legal != sorted(os_state.legal_actions()):
      out.append(f"legal moves: ours {legal}, OpenSpiel "
                 f"{sorted(os_state.legal_actions())}")
  return out
