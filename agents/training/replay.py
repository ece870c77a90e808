"""A fixed-size replay ring buffer that lives on the device.

Self-play steps ``N`` environments in lockstep, so the buffer stores time
steps as ``[C, N, ...]`` arrays (``C`` = capacity in time steps per
environment): column ``e`` is environment ``e``'s stream of consecutive
steps, episodes back to back (a ``done`` flag marks the last step of each).
``add`` writes a ``[T, N, ...]`` chunk at the write head, wrapping around;
``sample`` draws (start time, environment) pairs whose whole window of
``length`` consecutive steps is already written and not yet overwritten, and
``window`` gathers those windows.

Why our own buffer rather than flashbax:

* fewer dependencies: it is ~100 lines of ``jnp`` on top of what the library
  already needs;
* exact resume: the whole buffer is one pytree of plain arrays plus an
  integer write count, so a checkpoint saves and restores it bit for bit (and
  with it the sampling that follows), with no library-internal state or
  version-dependent layout to worry about;
* unrolls need contiguous windows: the K-step MuZero unroll and the n-step
  (or to-the-end) value targets read ``K + n + 1`` consecutive steps of one
  environment, across episode boundaries (masked by ``done``), and the
  sampler must know exactly which windows are fully written; with a
  time-major ``[C, N]`` layout that is a single modular index computation.

Everything here is a pure function of fixed-shape arrays, usable inside
``jit`` / ``lax.scan``.
"""
from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp


@chex.dataclass(frozen=True)
class ReplayBuffer:
  """``data``: pytree of ``[C, N, ...]`` arrays; ``count``: int32 number of
  time steps written so far (per environment; all columns move together)."""
  data: Any
  count: chex.Array

  @property
  def capacity(self) -> int:
    return jax.tree_util.tree_leaves(self.data)[0].shape[0]

  @property
  def num_envs(self) -> int:
    return jax.tree_util.tree_leaves(self.data)[0].shape[1]


def init(example_step: Any, capacity: int, num_envs: int) -> ReplayBuffer:
  """An empty buffer for steps shaped like ``example_step`` (one env's)."""
  if capacity < 1 or num_envs < 1:
    raise ValueError(f"capacity and num_envs must be >= 1, got {capacity}, "
                     f"{num_envs}")
  data = jax.tree.map(
      lambda x: jnp.zeros((capacity, num_envs) + jnp.shape(x),
                          jnp.asarray(x).dtype), example_step)
  return ReplayBuffer(data=data, count=jnp.zeros((), jnp.int32))


def add(buffer: ReplayBuffer, chunk: Any) -> ReplayBuffer:
  """Writes a ``[T, N, ...]`` chunk at the write head (wrapping around)."""
  capacity = buffer.capacity
  length = jax.tree_util.tree_leaves(chunk)[0].shape[0]
  if length > capacity:
    raise ValueError(f"chunk of {length} steps > capacity {capacity}")
  rows = (buffer.count + jnp.arange(length)) % capacity
  data = jax.tree.map(lambda d, c: d.at[rows].set(c.astype(d.dtype)),
                      buffer.data, chunk)
  return ReplayBuffer(data=data, count=buffer.count + length)


def num_valid_starts(buffer: ReplayBuffer, length: int) -> jax.Array:
  """How many start times have a complete window of ``length`` steps."""
  oldest = jnp.maximum(buffer.count - buffer.capacity, 0)
  return jnp.maximum(buffer.count - length + 1 - oldest, 0)


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int,
           length: int):
  """Uniform ``(start [batch], env [batch])`` over complete windows.

  Start times are absolute (``0 .. count - length``); only meaningful when
  ``num_valid_starts(buffer, length) > 0``.
  """
  if length > buffer.capacity:
    raise ValueError(f"window of {length} steps > capacity {buffer.capacity}")
  t_key, e_key = jax.random.split(key)
  oldest = jnp.maximum(buffer.count - buffer.capacity, 0)
  n = jnp.maximum(num_valid_starts(buffer, length), 1)
  start = oldest + jax.random.randint(t_key, (batch_size,), 0, n)
  env = jax.random.randint(e_key, (batch_size,), 0, buffer.num_envs)
  return start.astype(jnp.int32), env.astype(jnp.int32)


def window(buffer: ReplayBuffer, start: jax.Array, env: jax.Array,
           length: int, fields: Any = None):
  """``[batch, length, ...]`` windows of ``buffer.data`` (or of ``fields``,
  a sub-pytree of it with the same ``[C, N, ...]`` layout)."""
  return gather(buffer, start, env, jnp.arange(length)[None, :], fields)


def gather(buffer: ReplayBuffer, start: jax.Array, env: jax.Array,
           offsets: jax.Array, fields: Any = None):
  """``[batch, M, ...]`` steps ``start + offsets`` of environment ``env``:
  ``start [batch]``, ``env [batch]``, ``offsets [batch or 1, M]`` (each within
  the window sampled at ``start``), from ``buffer.data`` or ``fields`` as in
  :func:`window`."""
  rows = (start[:, None] + offsets) % buffer.capacity
  data = buffer.data if fields is None else fields
  return jax.tree.map(lambda d: d[rows, env[:, None]], data)
