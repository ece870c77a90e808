"""Cheap integer hashing for the search's inner loops.

`jax.random` runs threefry (a rolled loop on CPU) for every split and every
draw; inside a walk that takes a step per tree level that dominates small
searches. Here keys for the walk's steps are derived from one key per
simulation by an integer mix (Wellons' lowbias32), and tie-breaking noise is
hashed from a key's bits. The search splits its per-simulation keys the
same way (`split`). The derived keys are ordinary PRNG keys: a selection
rule may still use them with `jax.random`. The policies split their own key
with `jax.random.split`, as mctx does, so that the same key draws the same
noise (Dirichlet, Gumbel) and samples the same action as there.
"""
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
  data = jax.random.key_data(key)  # [W] uint32
  salt = salt.astype(jnp.uint32)[..., None]
  words = jnp.arange(data.shape[-1], dtype=jnp.uint32)
  new = mix32(data ^ mix32(salt * jnp.uint32(_GOLDEN) + words))
  if _is_typed(key):
    return jax.random.wrap_key_data(new, impl=jax.random.key_impl(key))
  return new


def split(key: chex.PRNGKey, num: int) -> chex.Array:
  """`num` new keys `[num, key]`, as `jax.random.split(key, num)` but by
  `derive_keys`: on the CPU `jax.random.split` runs threefry as a rolled
  loop, whose kernels XLA compiles and launches once per search."""
  return derive_keys(key, jnp.arange(num, dtype=jnp.uint32))


def uniform_from_key(key: chex.PRNGKey, num: int) -> chex.Array:
  """`[num]` float32 values in [0, 1), hashed from the key's bits."""
  data = jax.random.key_data(key).astype(jnp.uint32)
  seed = mix32(jnp.sum(mix32(data + jnp.arange(data.shape[-1],
                                               dtype=jnp.uint32))))
  x = mix32(seed ^ (jnp.arange(num, dtype=jnp.uint32) * jnp.uint32(_GOLDEN)))
  return (x >> 8).astype(jnp.float32) * (1.0 / (1 << 24))
