"""Mirror augmentation (agents/training/augment.py, envs.base.Mirror): the
reflection agrees with the game's rules, make_batch reflects about half of
its windows and nothing else, the flag's errors; one slow learning check."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from agents import algorithms
from agents import train_flags
from agents.training import augment
from agents.training import batch as batch_lib
from agents.training import replay
from agents.runs.run_dir import RunError
from tests.agents.helpers import tiny


def _play(env, actions):
  state = env.init(jax.random.PRNGKey(0))
  step = jax.jit(env.step)
  for a in actions:
    state = step(state, jnp.int32(a))
  return state


@pytest.mark.parametrize("name,moves", [
    ("connect4", [0, 0, 1, 6, 2, 3, 3, 5]),
    ("tictactoe", [0, 4, 5, 7, 2]),
])
def test_the_mirror_is_a_symmetry_of_the_rules(name, moves):
  """Playing the reflected moves reaches the reflected position, with the
  same rewards and the reflected legal moves, at every ply."""
  env = envs.make(name)
  mirror = env.mirror
  perm = np.asarray(mirror.actions)
  assert sorted(perm) == list(range(env.num_actions))
  np.testing.assert_array_equal(perm[perm], np.arange(env.num_actions))
  assert not np.array_equal(perm, np.arange(env.num_actions))
  for ply in range(len(moves) + 1):
    a = _play(env, moves[:ply])
    b = _play(env, [int(perm[m]) for m in moves[:ply]])
    np.testing.assert_array_equal(np.flip(a.observation, mirror.axis),
                                  b.observation)
    np.testing.assert_array_equal(np.asarray(a.legal_action_mask)[perm],
                                  b.legal_action_mask)
    assert float(a.reward) == float(b.reward)
    assert bool(a.terminated) == bool(b.terminated)


def _batch(B=6, K=2, A=7, obs=(6, 7, 2), seed=0):
  rng = np.random.default_rng(seed)
  policy = rng.random((B, K + 1, A)).astype(np.float32)
  return dict(
      observation=jnp.asarray(rng.random((B,) + obs), jnp.float32),
      next_observations=jnp.asarray(rng.random((B, K) + obs), jnp.float32),
      actions=jnp.asarray(rng.integers(0, A, (B, K)), jnp.int32),
      targets=dict(policy=jnp.asarray(policy / policy.sum(-1, keepdims=True)),
                   value=jnp.asarray(rng.random((B, K + 1)), jnp.float32),
                   reward=jnp.asarray(rng.random((B, K + 1)), jnp.float32),
                   alive=jnp.ones((B, K + 1), bool)))


def test_reflect_by_hand():
  """Connect Four: column c <-> 6 - c in observations, actions and policy;
  values, rewards and the rows not chosen unchanged; twice is identity."""
  mirror = envs.make("connect4").mirror
  batch = _batch()
  flip = jnp.array([True, False, True, False, False, True])
  out = jax.tree.map(np.asarray, augment.reflect(batch, mirror, flip))
  src = jax.tree.map(np.asarray, batch)
  for i, f in enumerate(np.asarray(flip)):
    if f:
      np.testing.assert_array_equal(out["observation"][i],
                                    src["observation"][i][:, ::-1, :])
      np.testing.assert_array_equal(out["next_observations"][i],
                                    src["next_observations"][i][:, :, ::-1])
      np.testing.assert_array_equal(out["actions"][i], 6 - src["actions"][i])
      np.testing.assert_array_equal(out["targets"]["policy"][i],
                                    src["targets"]["policy"][i][:, ::-1])
    else:
      for key in ("observation", "next_observations", "actions"):
        np.testing.assert_array_equal(out[key][i], src[key][i])
      np.testing.assert_array_equal(out["targets"]["policy"][i],
                                    src["targets"]["policy"][i])
  for key in ("value", "reward", "alive"):
    np.testing.assert_array_equal(out["targets"][key], src["targets"][key])
  twice = augment.reflect(augment.reflect(batch, mirror, flip), mirror, flip)
  jax.tree.map(np.testing.assert_array_equal, twice, batch)


def _filled_buffer(env, config, seed=0):
  """A replay buffer of random windows in the shapes self-play writes."""
  rng = np.random.default_rng(seed)
  T, E, A = config.replay_capacity, config.num_envs, env.num_actions
  policy = rng.random((T, E, A)).astype(np.float32)
  data = dict(
      observation=rng.integers(0, 2, (T, E) + env.observation_shape).astype(
          np.float32),
      reward=rng.choice([-1.0, 0.0, 1.0], (T, E)).astype(np.float32),
      done=rng.random((T, E)) < 0.1,
      value=rng.random((T, E)).astype(np.float32),
      explored=np.zeros((T, E), bool),
      policy=policy / policy.sum(-1, keepdims=True),
      action=rng.integers(0, A, (T, E)).astype(np.int32))
  example = jax.tree.map(lambda x: jnp.asarray(x[0, 0]), data)
  buffer = replay.init(example, capacity=T, num_envs=E)
  return replay.add(buffer, jax.tree.map(jnp.asarray, data))


def _rows_equal(a, b):
  """``[B]``: whether row i of batch ``a`` equals row i of ``b`` in every
  field."""
  leaves = zip(jax.tree.leaves(a), jax.tree.leaves(b))
  return np.all([np.all((np.asarray(x) == np.asarray(y)).reshape(
      x.shape[0], -1), axis=1) for x, y in leaves], axis=0)


@pytest.mark.parametrize("algo", ["alphazero", "muzero"])
def test_make_batch_reflects_about_half_of_its_windows(algo):
  """With --mirror on, each window of make_batch is, in every field, the
  window without it or its reflection; about half are reflected."""
  config = tiny("connect4", algo=algo, batch_size=512, replay_capacity=64,
                mirror=False)
  env = envs.make("connect4")
  buffer = _filled_buffer(env, config)
  key = jax.random.PRNGKey(3)
  plain = batch_lib.make_batch(config, env, buffer, key)
  on = dataclasses.replace(config, mirror=True)
  mirrored = batch_lib.make_batch(on, env, buffer, key)
  flipped = augment.reflect(plain, env.mirror,
                            jnp.ones(config.batch_size, bool))
  same, refl = _rows_equal(mirrored, plain), _rows_equal(mirrored, flipped)
  assert np.all(same | refl)
  assert 0.4 < refl.mean() < 0.6 and not np.any(same & refl)


def test_the_flag_needs_a_symmetric_game():
  parser = train_flags.build_parser()
  args = parser.parse_args(["--env", "2048", "--mirror", "on"])
  with pytest.raises(RunError, match="--mirror on needs a game with a "
                     "left-right symmetry.*2048"):
    train_flags.config_from_args(args)
  args = parser.parse_args(["--env", "connect4", "--mirror", "on"])
  assert train_flags.config_from_args(args).mirror is True
  # On by default for Connect Four only (measured there).
  args = parser.parse_args(["--env", "connect4"])
  assert train_flags.config_from_args(args).mirror is True
  args = parser.parse_args(["--env", "connect4", "--mirror", "off"])
  assert train_flags.config_from_args(args).mirror is False
  args = parser.parse_args(["--env", "tictactoe"])
  assert train_flags.config_from_args(args).mirror is False
  with pytest.raises(SystemExit):
    parser.parse_args(["--mirror", "yes"])
  with pytest.raises(ValueError, match=r"mirror \(--mirror\) must be a bool"):
    tiny(mirror=1)


def _asymmetry(agent, params, env, states):
  """Mean total variation between the network's policy at ``states`` and
  the reflection of its policy at the reflected states."""
  perm = np.asarray(env.mirror.actions)
  logits, _ = agent.predict(params, agent.nets.represent(
      params, states.observation))
  flipped, _ = agent.predict(params, agent.nets.represent(
      params, jnp.flip(states.observation, env.mirror.axis)))
  p = np.asarray(jax.nn.softmax(logits))
  q = np.asarray(jax.nn.softmax(flipped))[:, perm]
  return 0.5 * np.abs(p - q).sum(-1).mean()


@pytest.mark.slow
def test_mirror_teaches_the_network_the_symmetry():
  """Learning check: Connect Four AlphaZero (small net, 60 iterations) with
  and without --mirror on the same seed; with it, the network's policy on
  reflected positions is the reflected policy far more closely (measured
  on 256 positions after 0-10 random moves)."""
  from agents.training.state import init_train_state  # pylint: disable=g-import-not-at-top
  from agents.training.step import jitted_train_step  # pylint: disable=g-import-not-at-top
  from tests.agents.helpers import random_states  # pylint: disable=g-import-not-at-top
  env = envs.make("connect4")
  states = jax.tree.map(lambda *x: jnp.concatenate(x), *[
      random_states(env, 32, plies, seed=plies) for plies in range(0, 12, 2)])
  gaps = {}
  for mirror in (False, True):
    config = tiny("connect4", algo="alphazero", mirror=mirror, num_envs=32,
                  selfplay_steps=16, replay_capacity=128, width=64,
                  batch_size=64, td_steps=None, steps=60)
    agent = algorithms.make_agent(config, env)
    state = init_train_state(agent)
    step = jitted_train_step(agent)
    for _ in range(config.steps):
      state, metrics = step(state)
    assert np.isfinite(float(metrics["loss"]))
    gaps[mirror] = _asymmetry(agent, state.params, env, states)
  assert gaps[True] < 0.5 * gaps[False], gaps
