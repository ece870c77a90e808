"""Shared helpers of the tests of envs/: cached envs and jitted functions,
raw keys and noise built in numpy (threefry compiles slowly on the CPU and
these tests must stay fast), random legal play, rollouts, game results."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import envs

BATCH = 64


@functools.lru_cache(maxsize=None)
def get_env(name):
  return envs.make(name)


@functools.lru_cache(maxsize=None)
def jitted(name):
  env = get_env(name)
  return jax.jit(env.init), jax.jit(env.step)


def play(name, actions):
  """Plays a sequence of actions from the initial state; returns all states."""
  init, step = jitted(name)
  states = [init(raw_keys(0, 1)[0])]
  for a in actions:
    states.append(step(states[-1], jnp.int32(a)))
  return states


def raw_keys(seed, n):
  """n distinct raw PRNG keys [n, 2] built in numpy (no PRNG compile)."""
  return jnp.asarray(np.stack([np.full(n, seed), np.arange(n)], -1),
                     dtype=jnp.uint32)


def uniform_noise(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).random(shape), jnp.float32)


def random_legal(noise, mask):
  """Uniformly random legal action, given uniform noise [..., A]."""
  return jnp.argmax(jnp.where(mask, noise, -1.0), axis=-1).astype(jnp.int32)


@functools.lru_cache(maxsize=None)
def rollout_fn(name):
  """Jitted random-play rollout of BATCH envs for max_episode_steps + 1.

  Randomness comes in as arguments (keys for init, noise for the actions):
  threefry compiles slowly on CPU and these tests must stay fast.
  """
  env = get_env(name)

  def body(state, noise):
    actions = random_legal(noise, state.legal_action_mask)
    next_state = jax.vmap(env.step)(state, actions)
    return next_state, (state, actions, next_state)

  @jax.jit
  def rollout_(keys, noise):
    state = jax.vmap(env.init)(keys)
    return jax.lax.scan(body, state, noise)

  return rollout_


def rollout(name, seed):
  env = get_env(name)
  noise = uniform_noise(seed, (env.max_episode_steps + 1, BATCH,
                               env.num_actions))
  return rollout_fn(name)(raw_keys(seed, BATCH), noise)


def assert_trees_equal(a, b):
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def check_result(states, winner):
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
