"""envs/tictactoe_solver.py: the perfect player's tables, known positions,
matches against it, agreement with the env."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import tictactoe_solver as solver
from tests.envs import helpers as h


def _board(text):
  return [{".": 0, "X": 1, "O": 2}[c] for c in text.replace(" ", "")]


def test_solver_empty_board_is_draw():
  value, moves = solver.solve(solver.EMPTY_BOARD)
  assert value == 0
  assert moves == tuple(range(9))  # Every opening move draws.
  assert solver.tables().values[0] == 0
  assert int(solver.perfect_value(jnp.zeros(9, jnp.int32))) == 0


def test_solver_known_positions():
  # X to move wins in one at cell 2.
  b = _board("XX. OO. ...")
  value, moves = solver.solve(b)
  assert value == 1 and 2 in moves
  assert solver.action_values(b)[2] == 1
  # O to move also wins in one (cell 5) although X threatens cell 2.
  b = _board("XX. OO. X..")
  value, moves = solver.solve(b)
  assert value == 1 and moves == (5,)
  # O to move faces a double threat (cells 2 and 6): forced loss.
  b = _board("XX. XO. ..O")
  value, moves = solver.solve(b)
  assert value == -1
  assert moves == (2, 5, 6, 7)  # Every move loses, so every move is optimal.
  # Must block: X threatens 0-4-8, O to move.
  b = _board("... .X. O.X")  # X at 4, 8; O at 6; O to move.
  value, moves = solver.solve(b)
  assert value == 0 and moves == (0,)
  # Terminal: X has won, O to move.
  value, moves = solver.solve(_board("XXX OO. ..."))
  assert value == -1 and moves == ()
  with pytest.raises(ValueError):
    solver.solve(_board("XXX ... ..."))  # Unreachable (X moved 3 times).


def test_solver_tables_consistent():
  t = solver.tables()
  assert t.values.shape == (3 ** 9,) and t.optimal_mask.shape == (3 ** 9, 9)
  assert int(t.reachable.sum()) == 5478 and int(t.terminal.sum()) == 958
  idx = np.flatnonzero(t.reachable & ~t.terminal)
  boards = np.array([solver.decode(i) for i in idx])
  empty = boards == 0
  q = t.action_values[idx].astype(int)
  assert (t.optimal_mask[idx] <= empty).all()
  assert t.optimal_mask[idx].any(-1).all()
  np.testing.assert_array_equal((q != solver.ILLEGAL), empty)
  np.testing.assert_array_equal(q.max(-1), t.values[idx])
  np.testing.assert_array_equal(t.optimal_mask[idx], q == t.values[idx, None])
  assert solver.encode(solver.decode(12345)) == 12345
  b = jnp.asarray(solver.decode(12345), jnp.int32)
  assert int(jax.jit(solver.board_index)(b)) == 12345


@functools.lru_cache(maxsize=None)
def _match_fn():
  env = h.get_env("tictactoe")

  @jax.jit
  def match(keys, noise, perfect):
    """keys [9, B, 2] for the perfect player(s), noise [9, B, 9] for random
    play; perfect: bool [2], which players play perfectly."""
    def body(state, xs):
      keys, noise = xs
      perfect_actions = jax.vmap(solver.perfect_action)(keys, state.board)
      random_actions = h.random_legal(noise, state.legal_action_mask)
      actions = jnp.where(perfect[state.current_player], perfect_actions,
                          random_actions)
      return jax.vmap(env.step)(state, actions), None

    state = jax.vmap(env.init)(keys[0])
    state, _ = jax.lax.scan(body, state, (keys, noise))
    return state

  return match


def _match(seed, perfect, batch=256):
  keys = h.raw_keys(seed, 9 * batch).reshape(9, batch, 2)
  return _match_fn()(keys, h.uniform_noise(seed, (9, batch, 9)), jnp.asarray(perfect))


def test_perfect_vs_perfect_always_draws():
  final = _match(8, [True, True])
  assert final.terminated.all()
  np.testing.assert_array_equal(final.winner, -1)
  np.testing.assert_array_equal(final.step_count, 9)


@pytest.mark.parametrize("perfect_player", [0, 1])
def test_perfect_never_loses_to_random(perfect_player):
  final = _match(9 + perfect_player, np.arange(2) == perfect_player)
  assert final.terminated.all()
  winner = np.asarray(final.winner)
  assert not (winner == 1 - perfect_player).any()
  assert (winner == perfect_player).mean() > 0.5  # And it usually wins.


def test_solver_agrees_with_env_on_random_games():
  final, (before, _, after) = h.rollout("tictactoe", 10)
  t = solver.tables()
  boards = np.asarray(after.board).reshape(-1, 9)
  idx = boards @ solver.POWERS
  assert t.reachable[idx].all()
  np.testing.assert_array_equal(t.terminal[idx],
                                np.asarray(after.terminated).reshape(-1))
  # At terminal boards, the player to move has lost iff there is a winner.
  term = np.asarray(after.terminated).reshape(-1)
  won = np.asarray(after.winner).reshape(-1) >= 0
  np.testing.assert_array_equal(t.values[idx][term], np.where(won, -1, 0)[term])
