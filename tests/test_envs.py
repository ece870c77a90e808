"""Tests for the pure-JAX environments in envs/ (kept fast: a few seconds)."""

import functools
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import base
from envs import tictactoe_solver as solver

ENV_NAMES = ["tictactoe", "connect4", "catch"]
COMMON_FIELDS = ("observation", "reward", "rewards", "terminated",
                 "current_player", "legal_action_mask", "step_count")

# A Connect Four game that fills the board without anybody connecting four.
C4_DRAW = [4, 1, 6, 2, 1, 0, 1, 4, 4, 2, 4, 1, 3, 6, 3, 3, 1, 0, 4, 6, 6,
           1, 2, 3, 6, 0, 6, 4, 2, 5, 5, 3, 3, 2, 5, 5, 0, 2, 0, 5, 5, 0]


@functools.lru_cache(maxsize=None)
def _env(name):
  return envs.make(name)


@functools.lru_cache(maxsize=None)
def _jitted(name):
  env = _env(name)
  return jax.jit(env.init), jax.jit(env.step)


def _play(name, actions):
  """Plays a sequence of actions from the initial state; returns all states."""
  init, step = _jitted(name)
  states = [init(_keys(0, 1)[0])]
  for a in actions:
    states.append(step(states[-1], jnp.int32(a)))
  return states


def _keys(seed, n):
  """n distinct raw PRNG keys [n, 2] built in numpy (no PRNG compile)."""
  return jnp.asarray(np.stack([np.full(n, seed), np.arange(n)], -1),
                     dtype=jnp.uint32)


def _noise(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).random(shape), jnp.float32)


def _random_legal(noise, mask):
  """Uniformly random legal action, given uniform noise [..., A]."""
  return jnp.argmax(jnp.where(mask, noise, -1.0), axis=-1).astype(jnp.int32)


BATCH = 64


@functools.lru_cache(maxsize=None)
def _rollout_fn(name):
  """Jitted random-play rollout of BATCH envs for max_episode_steps + 1.

  Randomness comes in as arguments (keys for init, noise for the actions):
  threefry compiles slowly on CPU and these tests must stay fast.
  """
  env = _env(name)

  def body(state, noise):
    actions = _random_legal(noise, state.legal_action_mask)
    next_state = jax.vmap(env.step)(state, actions)
    return next_state, (state, actions, next_state)

  @jax.jit
  def rollout(keys, noise):
    state = jax.vmap(env.init)(keys)
    return jax.lax.scan(body, state, noise)

  return rollout


def _rollout(name, seed):
  env = _env(name)
  noise = _noise(seed, (env.max_episode_steps + 1, BATCH, env.num_actions))
  return _rollout_fn(name)(_keys(seed, BATCH), noise)


def _assert_trees_equal(a, b):
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


# ---------------------------------------------------------------------------
# Registry.


def test_make_known_names():
  assert isinstance(envs.make("tictactoe"), envs.TicTacToe)
  assert isinstance(envs.make("connect4"), envs.Connect4)
  assert isinstance(envs.make("catch"), envs.Catch)
  small = envs.make("catch", rows=6, columns=3)
  assert small.observation_shape == (6, 3, 1)
  assert small.max_episode_steps == 5


def test_make_unknown_name_lists_valid_names():
  with pytest.raises(ValueError) as info:
    envs.make("chess")
  for name in ("tictactoe", "connect4", "catch", "pgx:"):
    assert name in str(info.value)


def test_pgx_missing_raises_clear_import_error():
  if importlib.util.find_spec("pgx") is not None:
    pytest.skip("pgx is installed")
  with pytest.raises(ImportError, match="pip install pgx"):
    envs.make("pgx:go_9x9")


@pytest.mark.parametrize("name", ENV_NAMES)
def test_env_attributes(name):
  env = _env(name)
  assert isinstance(env, base.Env)
  assert env.name == name
  assert env.num_players in (1, 2)
  assert isinstance(env.num_actions, int)
  assert isinstance(env.observation_shape, tuple)
  hash(env)  # Usable as a static jit argument.


# ---------------------------------------------------------------------------
# Generic protocol tests, for every env.


@pytest.mark.parametrize("name", ENV_NAMES)
def test_jit_vmap_init_and_step(name):
  env = _env(name)
  batch = 8
  state = jax.jit(jax.vmap(env.init))(_keys(1, batch))
  assert isinstance(state, base.State)
  assert set(COMMON_FIELDS) <= set(state._fields)
  expected = {
      "observation": ((batch,) + env.observation_shape, jnp.float32),
      "reward": ((batch,), jnp.float32),
      "rewards": ((batch, env.num_players), jnp.float32),
      "terminated": ((batch,), jnp.bool_),
      "current_player": ((batch,), jnp.int32),
      "legal_action_mask": ((batch, env.num_actions), jnp.bool_),
      "step_count": ((batch,), jnp.int32),
  }
  for field, (shape, dtype) in expected.items():
    value = getattr(state, field)
    assert value.shape == shape, field
    assert value.dtype == dtype, field
  assert not state.terminated.any()
  assert (state.current_player == 0).all()

  actions = _random_legal(_noise(2, (batch, env.num_actions)),
                          state.legal_action_mask)
  next_state = jax.jit(jax.vmap(env.step))(state, actions)
  assert (jax.tree_util.tree_structure(next_state) ==
          jax.tree_util.tree_structure(state))
  for a, b in zip(jax.tree_util.tree_leaves(state),
                  jax.tree_util.tree_leaves(next_state)):
    assert a.shape == b.shape and a.dtype == b.dtype
  assert (next_state.step_count == 1).all()
  # render() of one unbatched element works.
  text = env.render(jax.tree_util.tree_map(lambda x: x[0], next_state))
  assert isinstance(text, str) and text


@pytest.mark.parametrize("name", ENV_NAMES)
def test_random_rollouts_terminate_with_consistent_masks(name):
  env = _env(name)
  final, (before, actions, after) = _rollout(name, 3)
  before, actions, after = jax.tree_util.tree_map(
      np.asarray, (before, actions, after))
  assert np.asarray(final.terminated).all()
  assert (np.asarray(final.step_count) <= env.max_episode_steps).all()

  live = ~before.terminated  # [T, B]: transitions that actually happened.
  # Terminal states: all-True mask. Live states: mask matches the board.
  np.testing.assert_array_equal(after.legal_action_mask[after.terminated], True)
  if name == "tictactoe":
    board_mask = before.board == 0
  elif name == "connect4":
    board_mask = before.board[:, :, 0, :] == 0  # Top row not full.
  else:
    board_mask = np.ones_like(before.legal_action_mask)
  np.testing.assert_array_equal(before.legal_action_mask[live],
                                board_mask[live])
  # Random play is legal, so every live step advances step_count by one.
  np.testing.assert_array_equal(after.step_count[live],
                                before.step_count[live] + 1)
  np.testing.assert_array_equal(after.step_count[~live],
                                before.step_count[~live])
  # Reward is for the mover; per-player rewards are consistent.
  mover = before.current_player
  np.testing.assert_array_equal(
      np.take_along_axis(after.rewards, mover[..., None], -1)[..., 0],
      after.reward)
  # Rewards only at the terminal transition, in {-1, 0, 1}.
  assert set(np.unique(after.reward)) <= {-1.0, 0.0, 1.0}
  assert (after.reward[~after.terminated] == 0).all()
  if env.num_players == 2:
    np.testing.assert_array_equal(after.rewards.sum(-1), 0.0)
    # Players alternate; observation planes are [own, opponent].
    np.testing.assert_array_equal(after.current_player[live],
                                  1 - before.current_player[live])
    board = after.board.reshape(after.board.shape[:2] + (-1,))
    own = board == (after.current_player[..., None] + 1)
    opp = board == (2 - after.current_player[..., None])
    obs = after.observation.reshape(board.shape + (2,))
    np.testing.assert_array_equal(obs[..., 0], own)
    np.testing.assert_array_equal(obs[..., 1], opp)
  else:
    assert (after.current_player == 0).all()
  if name == "catch":  # Exactly one +-1 reward per episode.
    assert set(np.unique(after.reward.sum(0))) <= {-1.0, 1.0}


@pytest.mark.parametrize("name", ENV_NAMES)
def test_stepping_terminated_state_is_noop(name):
  env = _env(name)
  batch = BATCH
  final, _ = _rollout(name, 4)
  assert final.terminated.all()
  # Give the terminal states a non-zero reward: stepping must zero it and
  # change nothing else, whatever the action (even out-of-range ones).
  final = final._replace(reward=jnp.ones_like(final.reward),
                         rewards=jnp.ones_like(final.rewards))
  step = jax.jit(jax.vmap(env.step))
  for action in (0, env.num_actions - 1, env.num_actions + 3, -1):
    nxt = step(final, jnp.full((batch,), action, jnp.int32))
    expected = final._replace(reward=jnp.zeros_like(final.reward),
                              rewards=jnp.zeros_like(final.rewards))
    _assert_trees_equal(nxt, expected)


# ---------------------------------------------------------------------------
# Tic-tac-toe.


def _check_result(states, winner):
  """The last state is the only terminal one, with the given winner."""
  assert not any(bool(s.terminated) for s in states[:-1])
  last = states[-1]
  mover = int(states[-2].current_player)
  assert bool(last.terminated)
  assert int(last.winner) == winner
  if winner < 0:
    expected_rewards = [0.0, 0.0]
  else:
    expected_rewards = [1.0, -1.0] if winner == 0 else [-1.0, 1.0]
  np.testing.assert_array_equal(last.rewards, expected_rewards)
  assert float(last.reward) == expected_rewards[mover]
  np.testing.assert_array_equal(last.legal_action_mask, True)


def test_tictactoe_wins_and_draw():
  _check_result(_play("tictactoe", [0, 3, 1, 4, 2]), winner=0)   # Row.
  _check_result(_play("tictactoe", [0, 3, 1, 4, 8, 5]), winner=1)  # Row, O.
  _check_result(_play("tictactoe", [1, 0, 2, 4, 3, 8]), winner=1)  # Diagonal.
  _check_result(_play("tictactoe", [2, 0, 5, 1, 8]), winner=0)   # Column.
  _check_result(_play("tictactoe", [0, 1, 2, 4, 3, 5, 7, 6, 8]), winner=-1)


def test_tictactoe_observation_and_mask():
  states = _play("tictactoe", [4, 0])
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
  text = _env("tictactoe").render(states[-1])
  assert "O . ." in text and ". X ." in text


@pytest.mark.parametrize("action", [4, 9, -1])
def test_tictactoe_illegal_move_loses(action):
  states = _play("tictactoe", [4, 0])  # X to move; 4 is occupied.
  s = states[-1]
  t = _jitted("tictactoe")[1](s, jnp.int32(action))
  assert bool(t.terminated)
  assert float(t.reward) == -1.0
  np.testing.assert_array_equal(t.rewards, [-1.0, 1.0])
  assert int(t.winner) == 1
  np.testing.assert_array_equal(t.board, s.board)  # Board unchanged.


# ---------------------------------------------------------------------------
# Connect Four.


@pytest.mark.parametrize("moves,winner", [
    ([0, 0, 1, 1, 2, 2, 3], 0),                  # Horizontal (bottom row).
    ([0, 1, 0, 1, 0, 1, 0], 0),                  # Vertical.
    ([0, 1, 0, 1, 2, 1, 6, 1], 1),               # Vertical by player 1.
    ([0, 1, 1, 2, 2, 3, 2, 3, 3, 6, 3], 0),      # Diagonal "/".
    ([6, 5, 5, 4, 4, 3, 4, 3, 3, 0, 3], 0),      # Diagonal "\".
    ([6, 0, 1, 1, 2, 2, 3, 3, 6, 4, 5, 4], 1),   # Horizontal, row 2, by p1.
])
def test_connect4_wins(moves, winner):
  _check_result(_play("connect4", moves), winner)


def test_connect4_gravity_and_render():
  s = _play("connect4", [3, 3, 3])[-1]
  np.testing.assert_array_equal(s.board[:, 3], [0, 0, 0, 1, 2, 1])
  assert (np.asarray(s.board)[:, [0, 1, 2, 4, 5, 6]] == 0).all()
  text = _env("connect4").render(s)
  assert text.splitlines()[3] == ". . . X . . ."


def test_connect4_full_board_draw():
  states = _play("connect4", C4_DRAW)
  _check_result(states, winner=-1)
  assert (np.asarray(states[-1].board) != 0).all()
  assert int(states[-1].step_count) == 42


def test_connect4_illegal_move_on_full_column():
  states = _play("connect4", [0, 0, 0, 0, 0, 0])  # Column 0 full, no win.
  s = states[-1]
  assert not bool(s.terminated)
  np.testing.assert_array_equal(s.legal_action_mask, [False] + [True] * 6)
  assert int(s.current_player) == 0
  t = _jitted("connect4")[1](s, jnp.int32(0))
  assert bool(t.terminated)
  assert float(t.reward) == -1.0
  np.testing.assert_array_equal(t.rewards, [-1.0, 1.0])
  np.testing.assert_array_equal(t.board, s.board)


# ---------------------------------------------------------------------------
# Catch.


@functools.lru_cache(maxsize=None)
def _catch_episode_fn():
  """Jitted batch of default-size Catch episodes under a scripted policy."""
  env = _env("catch")

  def body(carry, _):
    state, optimal = carry
    toward_ball = jnp.sign(state.ball_col - state.paddle_col) + 1
    action = jnp.where(optimal, toward_ball, 1)  # 1 = stay.
    nxt = jax.vmap(env.step)(state, action.astype(jnp.int32))
    return (nxt, optimal), nxt

  @jax.jit
  def episodes(keys, optimal):
    state = jax.vmap(env.init)(keys)
    _, traj = jax.lax.scan(body, (state, optimal), None, length=env.rows + 1)
    return state, jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), traj)

  return episodes


def test_catch_optimal_policy_always_catches():
  rows, columns = 10, 5
  first, traj = _catch_episode_fn()(_keys(5, 64), jnp.bool_(True))
  assert set(np.unique(first.ball_col)) == set(range(columns))
  returns = np.asarray(traj.reward).sum(1)
  np.testing.assert_array_equal(returns, 1.0)
  # Terminates after exactly rows - 1 steps (then no-ops).
  terminated = np.asarray(traj.terminated)  # [B, rows + 1]
  assert not terminated[:, : rows - 2].any()
  assert terminated[:, rows - 2:].all()
  np.testing.assert_array_equal(traj.step_count[:, -1], rows - 1)


def test_catch_do_nothing_sometimes_misses():
  first, traj = _catch_episode_fn()(_keys(6, 64), jnp.bool_(False))
  returns = np.asarray(traj.reward).sum(1)
  caught = np.asarray(first.ball_col) == 2
  np.testing.assert_array_equal(returns, np.where(caught, 1.0, -1.0))
  assert (returns == -1).any() and (returns == 1).any()


def test_catch_custom_size():
  env = envs.make("catch", rows=6, columns=3)
  init, step = jax.jit(env.init), jax.jit(env.step)
  seen = set()
  for i in range(12):
    s = init(_keys(11, 12)[i])
    seen.add(int(s.ball_col))
    assert s.observation.shape == (6, 3, 1)
    for t in range(env.rows - 1):
      assert not bool(s.terminated)
      action = int(np.sign(int(s.ball_col) - int(s.paddle_col))) + 1
      s = step(s, jnp.int32(action))
    assert bool(s.terminated) and float(s.reward) == 1.0
    assert int(s.step_count) == 5
  assert seen == {0, 1, 2}


def test_catch_observation_and_render():
  env = _env("catch")
  init, step = _jitted("catch")
  s = init(_keys(7, 1)[0])
  obs = np.asarray(s.observation)
  assert obs.shape == (10, 5, 1) and obs.sum() == 2
  assert obs[0, int(s.ball_col), 0] == 1 and obs[9, 2, 0] == 1
  s = step(s, jnp.int32(0))  # Paddle left.
  assert int(s.paddle_col) == 1 and int(s.ball_row) == 1
  s = step(s, jnp.int32(0))
  s = step(s, jnp.int32(0))  # Clipped at the wall.
  assert int(s.paddle_col) == 0
  lines = env.render(s).splitlines()
  assert lines[9] == "=...." and "@" in lines[3]


# ---------------------------------------------------------------------------
# Tic-tac-toe solver.


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
  env = _env("tictactoe")

  @jax.jit
  def match(keys, noise, perfect):
    """keys [9, B, 2] for the perfect player(s), noise [9, B, 9] for random
    play; perfect: bool [2], which players play perfectly."""
    def body(state, xs):
      keys, noise = xs
      perfect_actions = jax.vmap(solver.perfect_action)(keys, state.board)
      random_actions = _random_legal(noise, state.legal_action_mask)
      actions = jnp.where(perfect[state.current_player], perfect_actions,
                          random_actions)
      return jax.vmap(env.step)(state, actions), None

    state = jax.vmap(env.init)(keys[0])
    state, _ = jax.lax.scan(body, state, (keys, noise))
    return state

  return match


def _match(seed, perfect, batch=256):
  keys = _keys(seed, 9 * batch).reshape(9, batch, 2)
  return _match_fn()(keys, _noise(seed, (9, batch, 9)), jnp.asarray(perfect))


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
  final, (before, _, after) = _rollout("tictactoe", 10)
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


def test_pgx_adapter_with_real_pgx():
  """With pgx installed (`pip install pgx`): rewards go to the mover, a
  finished game steps to itself."""
  pytest.importorskip("pgx")
  env = envs.make("pgx:tic_tac_toe")
  assert (env.num_actions, env.num_players) == (9, 2)
  step = jax.jit(jax.vmap(env.step))
  state = jax.vmap(env.init)(jax.random.split(jax.random.PRNGKey(0), 2))
  for action in (0, 3, 1, 4, 2):  # The first player completes the top row.
    state = step(state, jnp.full((2,), action))
  np.testing.assert_array_equal(state.terminated, True)
  np.testing.assert_array_equal(state.reward, 1.0)
  np.testing.assert_array_equal(state.rewards.sum(-1), 0.0)
  after = step(state, jnp.full((2,), 5))
  np.testing.assert_array_equal(after.reward, 0.0)
