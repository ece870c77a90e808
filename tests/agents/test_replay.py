"""Tests of agents/training/replay.py: the ring buffer."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.training import replay


def test_replay_ring_buffer_wraps_around():
  example = dict(t=jnp.int32(0), v=jnp.zeros(2, jnp.float32))
  buf = replay.init(example, capacity=7, num_envs=3)
  assert buf.capacity == 7 and buf.num_envs == 3
  assert int(replay.num_valid_starts(buf, 4)) == 0
  written = 0
  add = jax.jit(replay.add)
  for _ in range(6):  # 6 chunks of 3 steps: wraps around twice.
    ts = written + jnp.arange(3)
    chunk = dict(t=jnp.tile(ts[:, None], (1, 3)) * 10 + jnp.arange(3),
                 v=jnp.zeros((3, 3, 2)) + ts[:, None, None])
    buf = add(buf, chunk)
    written += 3
    assert int(buf.count) == written
    # Row r holds absolute time step t with t % capacity == r, latest ones.
    for t in range(max(0, written - 7), written):
      np.testing.assert_array_equal(buf.data["t"][t % 7],
                                    t * 10 + np.arange(3))
    valid = int(replay.num_valid_starts(buf, 4))
    assert valid == min(written, 7) - 4 + 1 if written >= 4 else valid == 0
  # Sampled windows are complete, consecutive and from the right column.
  start, env = replay.sample(buf, jax.random.PRNGKey(0), 500, 4)
  assert int(start.min()) >= written - 7
  assert int(start.max()) <= written - 4
  assert set(np.unique(np.asarray(start))) == set(
      range(written - 7, written - 4 + 1))
  w = replay.window(buf, start, env, 4)
  expected = (start[:, None] + jnp.arange(4)) * 10 + env[:, None]
  np.testing.assert_array_equal(w["t"], expected)
  np.testing.assert_array_equal(w["v"][..., 0], start[:, None] +
                                jnp.arange(4))
  with pytest.raises(ValueError, match="capacity"):
    replay.sample(buf, jax.random.PRNGKey(0), 4, 8)
