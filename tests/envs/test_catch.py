"""envs/catch.py: scripted policies, a custom size, observations and render."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import envs
from tests.envs import helpers as h


@functools.lru_cache(maxsize=None)
def _catch_episode_fn():
  """Jitted batch of default-size Catch episodes under a scripted policy."""
  env = h.get_env("catch")

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
  first, traj = _catch_episode_fn()(h.raw_keys(5, 64), jnp.bool_(True))
  assert set(np.unique(first.ball_col)) == set(range(columns))
  returns = np.asarray(traj.reward).sum(1)
  np.testing.assert_array_equal(returns, 1.0)
  # Terminates after exactly rows - 1 steps (then no-ops).
  terminated = np.asarray(traj.terminated)  # [B, rows + 1]
  assert not terminated[:, : rows - 2].any()
  assert terminated[:, rows - 2:].all()
  np.testing.assert_array_equal(traj.step_count[:, -1], rows - 1)


def test_catch_do_nothing_sometimes_misses():
  first, traj = _catch_episode_fn()(h.raw_keys(6, 64), jnp.bool_(False))
  returns = np.asarray(traj.reward).sum(1)
  caught = np.asarray(first.ball_col) == 2
  np.testing.assert_array_equal(returns, np.where(caught, 1.0, -1.0))
  assert (returns == -1).any() and (returns == 1).any()


def test_catch_custom_size():
  env = envs.make("catch", rows=6, columns=3)
  init, step = jax.jit(env.init), jax.jit(env.step)
  seen = set()
  for i in range(12):
    s = init(h.raw_keys(11, 12)[i])
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
  env = h.get_env("catch")
  init, step = h.jitted("catch")
  s = init(h.raw_keys(7, 1)[0])
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
