"""Dirichlet noise for the roots of a pUCT search, sampled exactly and fast.

Dir(alpha) = normalised independent Gamma(alpha, 1) draws. `jax.random.gamma`
draws each element with its own rejection loop (vectorised, every element
waits for the slowest, and on the CPU each round runs threefry as a rolled
loop): 4 ms for 16 roots of 362 actions and 80-118 ms for 256 roots on
2 cores, up to a sixth of a whole 64-simulation pUCT search of those roots
(`benchmarks/studies/root_noise.py`). Here every element draws two candidates of
Marsaglia and Tsang's method at once, from one threefry call, and keeps the
first one accepted; only if some element rejected both (about 4e-4 of
them) is the whole array drawn again.

Marsaglia & Tsang (2000), "A simple method for generating gamma variables":
for a >= 1, d = a - 1/3, c = 1 / sqrt(9 d), x ~ N(0, 1), u ~ U(0, 1) and
v = (1 + c x)^3, the draw d v is Gamma(a, 1) distributed when accepted, if
v > 0 and log u < x^2 / 2 + d - d v + d log v. For alpha < 1 (Dirichlet
noise uses 0.03-0.3) the same paper's boost: Gamma(alpha + 1) * U^(1/alpha)
is Gamma(alpha). The samples are kept as logarithms, so that alpha = 0.03,
whose Gamma draws underflow float32 about once in 14, still normalises.
"""
import chex
import jax
import jax.numpy as jnp

from mcts import hashing

# Candidates per element and round: each is accepted with probability 0.98
# or more (a = alpha + 1 > 1), so that a round leaves about 4e-4 of the
# elements without a draw.
CANDIDATES = 2


def dirichlet(rng_key: chex.PRNGKey, alpha: chex.Numeric, shape,
              dtype=jnp.float32) -> chex.Array:
  """Samples of Dir(alpha, ..., alpha) over the last axis of `shape`.

  Args:
    rng_key: a PRNG key.
    alpha: the concentration, a scalar > 0 (or an array broadcastable to
      `shape`).
    shape: `[..., A]`.
    dtype: a float dtype.

  Returns:
    `shape` samples: non-negative, summing to 1 over the last axis.
  """
  log_g = log_gamma(rng_key, alpha, shape, _working_dtype(dtype))
  return jax.nn.softmax(log_g, axis=-1).astype(dtype)


def log_gamma(rng_key: chex.PRNGKey, alpha: chex.Numeric, shape,
              dtype=jnp.float32, candidates: int = CANDIDATES) -> chex.Array:
  """log G for independent G ~ Gamma(alpha, 1), `shape`.

  Args:
    rng_key: a PRNG key.
    alpha: a scalar > 0, or an array broadcastable to `shape`.
    shape: the shape of the samples.
    dtype: a float dtype (drawn in float32 if narrower).
    candidates: Marsaglia-Tsang candidates per element and round.
  """
  result_dtype, dtype = dtype, _working_dtype(dtype)
  shape = tuple(shape)
  alpha = jnp.broadcast_to(jnp.asarray(alpha, dtype), shape)
  d = alpha + (1 - 1 / 3)  # Marsaglia and Tsang's d for a = alpha + 1.
  c = jax.lax.rsqrt(9 * d)

  def candidates_from(bits):
    """(accepted `shape` bool, log(d v) of the first accepted candidate)
    from bits `[2, candidates, *shape]`."""
    x = normal_from_bits(bits[0], dtype)
    u = uniform_from_bits(bits[1], dtype)
    v = (1 + c * x) ** 3
    log_v = jnp.log(jnp.maximum(v, jnp.finfo(dtype).tiny))
    accepted = (v > 0) & (jnp.log(u) < x * x / 2 + d - d * v + d * log_v)
    first_log_v = log_v[-1]
    for i in reversed(range(candidates - 1)):
      first_log_v = jnp.where(accepted[i], log_v[i], first_log_v)
    return jnp.any(accepted, axis=0), jnp.log(d) + first_log_v

  def some_left(state):
    return ~jnp.all(state[0])

  def next_round(state):
    done, log_g, round_index = state
    bits = hashing.random_bits(hashing.derive_keys(rng_key, round_index),
                               (2, candidates) + shape)
    accepted, new_log_g = candidates_from(bits)
    log_g = jnp.where(done, log_g, new_log_g)
    return done | accepted, log_g, round_index + 1

  # One threefry call for the first round and the boost.
  bits = hashing.random_bits(rng_key, (2 * candidates + 1,) + shape)
  first = candidates_from(bits[:-1].reshape((2, candidates) + shape))
  _, log_g, _ = jax.lax.while_loop(some_left, next_round, first + (1,))
  log_boost = jnp.log(uniform_from_bits(bits[-1], dtype)) / alpha
  return (log_g + log_boost).astype(result_dtype)


def _working_dtype(dtype):
  """`dtype`, or float32 for narrower floats (bfloat16 cannot hold the
  uniforms' 23 bits)."""
  return jnp.promote_types(dtype, jnp.float32)


def uniform_from_bits(bits: chex.Array, dtype) -> chex.Array:
  """U(0, 1) floats from uint32 bits, never 0 or 1: the top 23 bits, plus
  half a step (exact in float32)."""
  return ((bits >> 9).astype(dtype) + 0.5) * (1 / (1 << 23))


def normal_from_bits(bits: chex.Array, dtype) -> chex.Array:
  """N(0, 1) floats from uint32 bits, by the inverse CDF:
  sqrt(2) erfinv(2u - 1)."""
  return jnp.sqrt(2).astype(dtype) * jax.lax.erf_inv(
      2 * uniform_from_bits(bits, dtype) - 1)
