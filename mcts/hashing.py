"""Cheap integer hashing and counter-based bits for the search.

`jax.random` runs threefry (a rolled loop on CPU) for every split and every
draw; inside a walk that takes a step per tree level that dominates small
searches. Here keys for the walk's steps are derived from one key per
simulation by an integer mix (Wellons' lowbias32), and tie-breaking noise is
hashed from a key's bits. The search splits its per-simulation keys the
same way (`split`). The derived keys are ordinary PRNG keys: a selection
rule may still use them with `jax.random`. Where noise must be of
`jax.random`'s quality but many numbers are drawn at once (the roots'
Dirichlet noise), `random_bits` runs threefry written out round by round,
which XLA fuses into one kernel. The policies split their own key with
`jax.random.split`, as mctx does, so that the same key draws the same Gumbel
noise and samples the same action as there.
"""
import math

import chex
import jax
import jax.numpy as jnp

_GOLDEN = 0x9E3779B9


def mix32(x: chex.Array) -> chex.Array:
  """A bijective avalanche mix of uint32 values (lowbias32)."""
  x = x.astype(jnp.uint32)
  x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
  x = (x ^ (x >> 15)) * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def _is_typed(key):
  return jnp.issubdtype(key.dtype, jax.dtypes.prng_key)


def derive_keys(key: chex.PRNGKey, salt: chex.Array) -> chex.Array:
  """One new key per entry of `salt` (uint32/int32 `[...]`): `[..., key]`."""
  new = derive_words(jax.random.key_data(key), salt)
  if _is_typed(key):
    return jax.random.wrap_key_data(new, impl=jax.random.key_impl(key))
  return new


def derive_words(data: chex.Array, salt: chex.Array) -> chex.Array:
  """`derive_keys` on a key's data `[W]` (uint32): `[..., W]`."""
  salt = salt.astype(jnp.uint32)[..., None]
  words = jnp.arange(data.shape[-1], dtype=jnp.uint32)
  return mix32(data ^ mix32(salt * jnp.uint32(_GOLDEN) + words))


def split(key: chex.PRNGKey, num: int) -> chex.Array:
  """`num` new keys `[num, key]`, as `jax.random.split(key, num)` but by
  `derive_keys`: on the CPU `jax.random.split` runs threefry as a rolled
  loop, whose kernels XLA compiles and launches once per search."""
  return derive_keys(key, jnp.arange(num, dtype=jnp.uint32))


def uniform_from_key(key: chex.PRNGKey, num: int) -> chex.Array:
  """`[num]` float32 values in [0, 1), hashed from the key's bits."""
  return uniform_from_words(jax.random.key_data(key), num)


def uniform_from_words(data: chex.Array, num: int) -> chex.Array:
  """`uniform_from_key` on a key's data `[W]` (uint32)."""
  data = data.astype(jnp.uint32)
  seed = mix32(jnp.sum(mix32(data + jnp.arange(data.shape[-1],
                                               dtype=jnp.uint32))))
  x = mix32(seed ^ (jnp.arange(num, dtype=jnp.uint32) * jnp.uint32(_GOLDEN)))
  return (x >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


# Threefry-2x32's rotation distances, one per round, repeating every 8.
_THREEFRY_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_THREEFRY_PARITY = 0x1BD11BDA


def threefry2x32(key_words, counters):
  """Threefry-2x32 with 20 rounds (Salmon et al. 2011, "Parallel random
  numbers: as easy as 1, 2, 3") of the counter pairs `counters` (two uint32
  arrays) under the key `key_words` (two uint32 scalars), written out round
  by round: XLA fuses it into one kernel, where `jax.random`'s CPU lowering
  runs it as a rolled loop of separate kernels.

  Returns:
    the two uint32 output words, shaped as the counters.
  """
  k0, k1 = (jnp.asarray(k, jnp.uint32) for k in key_words)
  schedule = (k0, k1, k0 ^ k1 ^ jnp.uint32(_THREEFRY_PARITY))
  x0, x1 = (jnp.asarray(x, jnp.uint32) for x in counters)
  x0, x1 = x0 + schedule[0], x1 + schedule[1]
  for block in range(5):
    for rotation in _THREEFRY_ROTATIONS[4 * (block % 2):][:4]:
      x0 = x0 + x1
      x1 = (x1 << rotation) | (x1 >> (32 - rotation))
      x1 = x1 ^ x0
    x0 = x0 + schedule[(block + 1) % 3]
    x1 = x1 + schedule[(block + 2) % 3] + jnp.uint32(block + 1)
  return x0, x1


def random_bits(key: chex.PRNGKey, shape) -> chex.Array:
  """uint32 `shape` bits from threefry2x32 of the counters 0, 1, ... under
  the key's data (raw or typed; a key of other than two words is first
  mixed down to two)."""
  data = jax.random.key_data(key).astype(jnp.uint32).reshape(-1)
  if data.shape[0] != 2:
    words = mix32(data + jnp.arange(data.shape[0], dtype=jnp.uint32))
    data = jnp.stack([mix32(jnp.sum(words)), mix32(jnp.sum(words ^ _GOLDEN))])
  size = math.prod(shape)
  counters = jnp.arange((size + 1) // 2, dtype=jnp.uint32)
  x0, x1 = threefry2x32((data[0], data[1]),
                        (counters, jnp.zeros_like(counters)))
  return jnp.concatenate([x0, x1])[:size].reshape(shape)
