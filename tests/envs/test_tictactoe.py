"""envs/tictactoe.py: wins, draws, observations, masks, illegal moves."""

import jax.numpy as jnp
import numpy as np
import pytest

from tests.envs import helpers as h


def test_tictactoe_wins_and_draw():
  h.check_result(h.play("tictactoe", [0, 3, 1, 4, 2]), winner=0)   # Row.
  h.check_result(h.play("tictactoe", [0, 3, 1, 4, 8, 5]), winner=1)  # Row, O.
  h.check_result(h.play("tictactoe", [1, 0, 2, 4, 3, 8]), winner=1)  # Diagonal.
  h.check_result(h.play("tictactoe", [2, 0, 5, 1, 8]), winner=0)   # Column.
  h.check_result(h.play("tictactoe", [0, 1, 2, 4, 3, 5, 7, 6, 8]), winner=-1)


def test_tictactoe_observation_and_mask():
  states = h.play("tictactoe", [4, 0])
  s = states[-1]  # X in the centre, O in the corner, X to move.
  assert int(s.current_player) == 0
  assert s.observation[1, 1, 0] == 1 and s.observation[0, 0, 1] == 1
  assert float(s.observation.sum()) == 2
  expected = np.ones(9, bool)
  expected[[0, 4]] = False
  np.testing.assert_array_equal(s.legal_action_mask, expected)
  s = states[-2]  # O to move: its own plane is empty.
  assert float(s.observation[..., 0].sum()) == 0
  assert s.observation[1, 1, 1] == 1
  text = h.get_env("tictactoe").render(states[-1])
  assert "O . ." in text and ". X ." in text


@pytest.mark.parametrize("action", [4, 9, -1])
def test_tictactoe_illegal_move_loses(action):
  states = h.play("tictactoe", [4, 0])  # X to move; 4 is occupied.
  s = states[-1]
  t = h.jitted("tictactoe")[1](s, jnp.int32(action))
  assert bool(t.terminated)
  assert float(t.reward) == -1.0
  np.testing.assert_array_equal(t.rewards, [-1.0, 1.0])
  assert int(t.winner) == 1
  np.testing.assert_array_equal(t.board, s.board)  # Board unchanged.


# ---------------------------------------------------------------------------
