"""envs/connect4.py: wins in every direction, gravity, a full-board draw,
an illegal move on a full column."""

import jax.numpy as jnp
import numpy as np
import pytest

from tests.envs import helpers as h

# A Connect Four game that fills the board without anybody connecting four.
C4_DRAW = [4, 1, 6, 2, 1, 0, 1, 4, 4, 2, 4, 1, 3, 6, 3, 3, 1, 0, 4, 6, 6,
           1, 2, 3, 6, 0, 6, 4, 2, 5, 5, 3, 3, 2, 5, 5, 0, 2, 0, 5, 5, 0]


@pytest.mark.parametrize("moves,winner", [
    ([0, 0, 1, 1, 2, 2, 3], 0),                  # Horizontal (bottom row).
    ([0, 1, 0, 1, 0, 1, 0], 0),                  # Vertical.
    ([0, 1, 0, 1, 2, 1, 6, 1], 1),               # Vertical by player 1.
    ([0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3], 0),      # Diagonal "/".
    ([6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3], 0),      # Diagonal "\".
    ([6, 0, 1, 1, 2, 2, 3, 3, 6, 4, 5, 4], 1),   # Horizontal, row 2, by p1.
])
def test_connect4_wins(moves, winner):
  h.check_result(h.play("connect4", moves), winner)


def test_connect4_gravity_and_render():
  s = h.play("connect4", [3, 3, 3])[-1]
  np.testing.assert_array_equal(s.board[:, 3], [0, 0, 0, 1, 2, 1])
  assert (np.asarray(s.board)[:, [0, 1, 2, 4, 5, 6]] == 0).all()
  text = h.get_env("connect4").render(s)
  assert text.splitlines()[3] == ". . . X . . ."


def test_connect4_full_board_draw():
  states = h.play("connect4", C4_DRAW)
  h.check_result(states, winner=-1)
  assert (np.asarray(states[-1].board) != 0).all()
  assert int(states[-1].step_count) == 42


def test_connect4_illegal_move_on_full_column():
  states = h.play("connect4", [0, 0, 0, 0, 0, 0])  # Column 0 full, no win.
  s = states[-1]
  assert not bool(s.terminated)
  np.testing.assert_array_equal(s.legal_action_mask, [False] + [True] * 6)
  assert int(s.current_player) == 0
  t = h.jitted("connect4")[1](s, jnp.int32(0))
  assert bool(t.terminated)
  assert float(t.reward) == -1.0
  np.testing.assert_array_equal(t.rewards, [-1.0, 1.0])
  np.testing.assert_array_equal(t.board, s.board)


# ---------------------------------------------------------------------------
