"""Tests of agents/training/targets.py: the value, reward and policy
targets of replayed windows."""
import jax
import jax.numpy as jnp
import numpy as np

import envs
from agents.training import targets as targets_lib
from tests.agents.helpers import tiny


def test_value_targets_two_player():
  """n-step-to-the-end targets alternate sign between plies and stop at the
  episode end; unroll steps past the end are absorbing."""
  config = tiny("tictactoe", unroll_steps=3, td_steps=4)
  env = envs.make("tictactoe")
  targets = jax.jit(lambda w: targets_lib.compute_targets(config, env, w))
  # One window of L = K + n + 1 = 8 steps: an episode ending at step 2 with
  # a win for the mover of step 2, then a new episode.
  done = jnp.array([[0, 0, 1, 0, 0, 0, 0, 0]], bool)
  reward = jnp.array([[0, 0, 1, 0, 0, 0, 0, -1]], jnp.float32)
  value = jnp.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]])
  policy = jnp.ones((1, 8, 9)) / 9
  out = targets(dict(
      done=done, reward=reward, value=value, policy=policy))
  # Step 0: mover of step 2 is the same player -> +1; step 1: -1; step 2: +1.
  np.testing.assert_allclose(out["value"][0], [1.0, -1.0, 1.0, 0.0])
  np.testing.assert_array_equal(out["alive"][0], [True, True, True, False])
  # Rewards into unrolled states 1..3 = r_t, r_{t+1}, r_{t+2}.
  np.testing.assert_allclose(out["reward"][0, 1:], [0.0, 0.0, 1.0])
  # Bootstrapping: no episode end within n steps -> d^n * value[t+n].
  done = jnp.zeros((1, 8), bool)
  out = targets(dict(
      done=done, reward=jnp.zeros((1, 8)), value=value, policy=policy))
  np.testing.assert_allclose(out["value"][0], value[0, 4:8], rtol=1e-6)
  # A random exploration move at step 2: steps 0 and 1 bootstrap from the
  # search value at step 2 (from their own point of view), step 2 itself
  # uses the outcome (its own move is not "after" it).
  explored = jnp.array([[0, 0, 1, 0, 0, 0, 0, 0]], bool)
  done = jnp.array([[0, 0, 0, 1, 0, 0, 0, 0]], bool)
  reward = jnp.array([[0, 0, 0, 1, 0, 0, 0, 0]], jnp.float32)
  out = targets(dict(
      done=done, reward=reward, value=value, policy=policy,
      explored=explored))
  np.testing.assert_allclose(out["value"][0], [0.3, -0.3, -1.0, 1.0],
                             rtol=1e-6)
