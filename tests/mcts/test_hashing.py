"""The integer-mix keys and noise of `mcts.hashing`."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from mcts import hashing


def test_mix32_is_a_bijection_on_a_sample():
  x = jnp.arange(1 << 16, dtype=jnp.uint32) * jnp.uint32(40503)
  mixed = np.asarray(hashing.mix32(x))
  assert len(np.unique(mixed)) == len(mixed)


@pytest.mark.parametrize("make_key", [jax.random.PRNGKey, jax.random.key])
def test_split_gives_distinct_reproducible_keys(make_key):
  key = make_key(7)
  keys = hashing.split(key, 1000)
  assert keys.shape == (1000,) + key.shape
  data = np.asarray(jax.random.key_data(keys)).reshape(1000, -1)
  assert len({row.tobytes() for row in data}) == 1000
  np.testing.assert_array_equal(
      data, np.asarray(jax.random.key_data(hashing.split(key, 1000))
                       ).reshape(1000, -1))
  other = np.asarray(jax.random.key_data(hashing.split(make_key(8), 1000))
                     ).reshape(1000, -1)
  assert not np.any(np.all(data == other, axis=1))
  # The derived keys are ordinary keys for jax.random.
  draws = jax.vmap(lambda k: jax.random.uniform(k))(keys)
  assert len(np.unique(np.asarray(draws))) == 1000


def test_uniform_from_key_is_in_range_and_close_to_uniform():
  values = np.asarray(hashing.uniform_from_key(jax.random.PRNGKey(3), 1 << 14))
  assert values.min() >= 0.0 and values.max() < 1.0
  # Kolmogorov-Smirnov distance to U(0, 1); 0.02 is far above the 1%
  # critical value for 16384 samples (about 0.0127).
  ks = np.max(np.abs(np.sort(values) - np.arange(1, len(values) + 1)
                     / len(values)))
  assert ks < 0.02, ks


def test_each_simulation_gets_its_own_model_key():
  """`recurrent_fn` stores its key's bits as the new node's embedding: all
  the nodes of all the trees must differ."""
  batch, num_actions, num_simulations = 3, 4, 24

  def recurrent_fn(params, rng_key, action, embedding):
    del params, embedding
    bits = jnp.broadcast_to(jax.random.key_data(rng_key), (batch, 2))
    out = mcts.RecurrentFnOutput(
        reward=jnp.zeros(batch), discount=jnp.ones(batch),
        prior_logits=jnp.zeros((batch, num_actions)),
        value=jax.random.uniform(rng_key, (batch,)) + action * 0.0)
    return out, bits

  root = mcts.RootFnOutput(prior_logits=jnp.zeros((batch, num_actions)),
                           value=jnp.zeros(batch),
                           embedding=jnp.zeros((batch, 2), jnp.uint32))
  tree = jax.jit(lambda key: mcts.muzero_policy(
      (), key, root, recurrent_fn, num_simulations).search_tree)(
          jax.random.PRNGKey(0))
  bits = np.asarray(tree.embeddings)[:, 1:]  # [B, N - 1, 2], no roots
  assert len({row.tobytes() for row in bits[0]}) == num_simulations
  # One key per simulation for the whole batch.
  np.testing.assert_array_equal(bits[0], bits[1])


@pytest.mark.parametrize("key,counter,expected", [
    # Random123's known-answer vectors for threefry2x32 with 20 rounds.
    ((0, 0), (0, 0), (0x6b200159, 0x99ba4efe)),
    ((0xffffffff, 0xffffffff), (0xffffffff, 0xffffffff),
     (0x1cb996fc, 0xbb002be7)),
    ((0x13198a2e, 0x03707344), (0x243f6a88, 0x85a308d3),
     (0xc4923a9c, 0x483df7a0)),
])
def test_threefry2x32_known_answers(key, counter, expected):
  out = hashing.threefry2x32(key, tuple(jnp.uint32(c) for c in counter))
  assert tuple(int(x) for x in out) == expected


@pytest.mark.parametrize("make_key", [jax.random.PRNGKey, jax.random.key])
def test_random_bits_are_reproducible_and_uniform(make_key):
  bits = np.asarray(hashing.random_bits(make_key(3), (5, 1001)))
  assert bits.shape == (5, 1001) and bits.dtype == np.uint32
  np.testing.assert_array_equal(
      bits, np.asarray(hashing.random_bits(make_key(3), (5, 1001))))
  other = np.asarray(hashing.random_bits(make_key(4), (5, 1001)))
  assert np.mean(bits == other) < 0.01
  assert len(np.unique(bits)) > 0.99 * bits.size
  # Each of the 32 bit positions is set in half of the words.
  ones = np.unpackbits(bits.view(np.uint8)).reshape(-1, 32).mean(axis=0)
  np.testing.assert_allclose(ones, 0.5, atol=0.03)
