"""envs/pgx_adapter.py: pgx's games through envs.make("pgx:<id>")."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs


def test_pgx_missing_raises_clear_import_error():
  if importlib.util.find_spec("pgx") is not None:
    pytest.skip("pgx is installed")
  with pytest.raises(ImportError, match="pip install pgx"):
    envs.make("pgx:go_9x9")


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
