"""Tests of agents/algorithms/losses.py: the value transform and the
two-hot categorical values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.algorithms import losses
from agents.algorithms.losses import Support, h, h_inv


def test_value_transform_round_trip():
  x = jnp.concatenate([jnp.linspace(-1000.0, 1000.0, 20001),
                       jnp.array([0.0, 1e-6, -1e-6, 0.5, -0.5])])
  np.testing.assert_allclose(h_inv(h(x)), x, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(h(h_inv(x)), x, rtol=1e-5, atol=1e-4)
  assert float(h(jnp.float32(0.0))) == 0.0
  # h is odd and increasing.
  np.testing.assert_allclose(h(-x), -h(x), rtol=1e-6)
  assert bool(jnp.all(jnp.diff(h(jnp.linspace(-50, 50, 1001))) > 0))


@pytest.mark.parametrize("lo,hi,bins", [(-1.0, 1.0, 21), (-10.0, 300.0, 51),
                                        (0.0, 1.0, 2)])
def test_two_hot(lo, hi, bins):
  s = Support(lo, hi, bins)
  x = jnp.linspace(lo, hi, 997)
  p = s.scalar_to_two_hot(x)
  assert p.shape == (997, bins)
  np.testing.assert_allclose(jnp.sum(p, -1), 1.0, atol=1e-6)
  assert bool(jnp.all(p >= 0))
  nonzero = p > 1e-7
  assert int(jnp.max(jnp.sum(nonzero, -1))) <= 2
  # The (at most two) non-zero bins are adjacent.
  idx = jnp.where(nonzero, jnp.arange(bins), -1)
  first = jnp.argmax(nonzero, -1)
  assert bool(jnp.all(jnp.max(idx, -1) - first <= 1))
  # The expected support point is h(x), so the round trip is exact.
  np.testing.assert_allclose(jnp.sum(p * s.points, -1), h(x), atol=1e-5)
  np.testing.assert_allclose(s.probs_to_scalar(p), x,
                             atol=1e-4 * max(1.0, abs(hi)))
  # Out of range values are clipped; a support point is a one-hot.
  np.testing.assert_allclose(s.probs_to_scalar(
      s.scalar_to_two_hot(jnp.array([lo - 5.0, hi + 5.0]))), [lo, hi],
                             atol=1e-3 * max(1.0, abs(hi)))
  np.testing.assert_allclose(s.scalar_to_two_hot(jnp.float32(hi)),
                             jax.nn.one_hot(bins - 1, bins), atol=1e-5)


def test_masked_mean_by_shard():
  """The mean over the set entries; with ``rows``, the mean of each
  shard's (blocks of ``rows`` rows), as the two devices of a sharded step
  would average them; all entries masked give 0."""
  x = jnp.arange(12.0).reshape(4, 3)
  mask = jnp.array([[1, 1, 0], [0, 0, 0], [1, 0, 0], [1, 1, 1]], bool)
  np.testing.assert_allclose(losses.masked_mean(x, mask),
                             (0 + 1 + 6 + 9 + 10 + 11) / 6)
  np.testing.assert_allclose(losses.masked_mean(x, mask, rows=2),
                             ((0 + 1) / 2 + (6 + 9 + 10 + 11) / 4) / 2)
  np.testing.assert_allclose(losses.masked_mean(x, mask, rows=3),
                             losses.masked_mean(x, mask))
  assert float(losses.masked_mean(x, jnp.zeros_like(mask))) == 0.0
