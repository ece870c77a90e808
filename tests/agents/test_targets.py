"""Tests of agents/training/targets.py: the value, reward and policy
targets of replayed windows."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents import config as config_lib
from agents import train_flags
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


def test_root_value_mix():
  """``(1 - a) z + a q`` with q the stored root value of the same step,
  on the first window above (outcomes z = 1, -1, 1, then absorbing): the
  absorbing step keeps target 0, and a = 0 gives z exactly."""
  env = envs.make("tictactoe")
  window = dict(
      done=jnp.array([[0, 0, 1, 0, 0, 0, 0, 0]], bool),
      reward=jnp.array([[0, 0, 1, 0, 0, 0, 0, -1]], jnp.float32),
      value=jnp.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]]),
      policy=jnp.ones((1, 8, 9)) / 9)
  def value(a):
    config = tiny("tictactoe", unroll_steps=3, td_steps=4, root_value_mix=a)
    return np.asarray(targets_lib.compute_targets(config, env, window)
                      ["value"][0])
  np.testing.assert_allclose(value(0.0), [1.0, -1.0, 1.0, 0.0])
  np.testing.assert_allclose(value(0.25), [0.775, -0.7, 0.825, 0.0],
                             rtol=1e-6)
  np.testing.assert_allclose(value(1.0), [0.1, 0.2, 0.3, 0.0], rtol=1e-6)


@pytest.mark.parametrize("a", [-0.1, 1.5, float("nan"), True])
@pytest.mark.parametrize("name", ["root_value_mix", "random_move_prob"])
def test_probabilities_out_of_range_are_refused(name, a):
  with pytest.raises(ValueError, match=name + ".* must be in \\[0, 1\\]"):
    config_lib.make_config("connect4", **{name: a})


def test_root_value_mix_flag():
  args = train_flags.build_parser().parse_args(
      ["--env", "connect4", "--root-value-mix", "0.5"])
  assert train_flags.config_from_args(args).root_value_mix == 0.5
  args = train_flags.build_parser().parse_args(["--env", "connect4"])
  assert train_flags.config_from_args(args).root_value_mix == 0.0
