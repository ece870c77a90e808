"""The protocol every env of envs/ keeps (envs/base.py): shapes and dtypes
under jit and vmap, random rollouts that terminate with consistent masks
and rewards, a finished game that steps to itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import base
from tests.envs import helpers as h

ENV_NAMES = ["tictactoe", "connect4", "catch"]
COMMON_FIELDS = ("observation", "reward", "rewards", "terminated",
                 "current_player", "legal_action_mask", "step_count")


@pytest.mark.parametrize("name", ENV_NAMES)
def test_env_attributes(name):
  env = h.get_env(name)
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
  env = h.get_env(name)
  batch = 8
  state = jax.jit(jax.vmap(env.init))(h.raw_keys(1, batch))
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

  actions = h.random_legal(h.uniform_noise(2, (batch, env.num_actions)),
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
  env = h.get_env(name)
  final, (before, actions, after) = h.rollout(name, 3)
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
  env = h.get_env(name)
  batch = h.BATCH
  final, _ = h.rollout(name, 4)
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
    h.assert_trees_equal(nxt, expected)


# ---------------------------------------------------------------------------
# Tic-tac-toe.
