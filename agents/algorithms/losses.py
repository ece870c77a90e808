"""The loss helpers the algorithms share: MuZero's invertible value
transform and categorical (two-hot) values, the cross-entropy, the
gradient scaling of an unrolled hidden state, the negative cosine
similarity of a self-supervised consistency term, and a masked mean.

Values and rewards are predicted as distributions over a fixed support of
``num_bins`` equally spaced points in the *transformed* space
``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x`` (Pohlen et al. 2018, as used
by MuZero). A scalar target ``x`` becomes the "two-hot" distribution that
puts its mass on the two support points around ``h(x)`` so that the expected
support point equals ``h(x)`` exactly; a predicted distribution ``p`` maps
back to the scalar ``h^-1(sum_i p_i z_i)``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

EPS = 1e-3


def h(x, eps: float = EPS):
  """The MuZero value transform, h(x) = sign(x)(sqrt(|x|+1)-1) + eps x."""
  return jnp.sign(x) * (jnp.sqrt(jnp.abs(x) + 1.0) - 1.0) + eps * x


def h_inv(y, eps: float = EPS):
  """The exact inverse of :func:`h`.

  Solves the quadratic for ``s = sqrt(|x| + 1)``; the root is written as
  ``2 (|y| + 1 + eps) / (sqrt(1 + 4 eps (|y| + 1 + eps)) + 1)`` instead of
  ``(sqrt(...) - 1) / (2 eps)`` to avoid cancellation in float32.
  """
  c = jnp.abs(y) + 1.0 + eps
  s = 2.0 * c / (jnp.sqrt(1.0 + 4.0 * eps * c) + 1.0)
  return jnp.sign(y) * (jnp.square(s) - 1.0)


@dataclasses.dataclass(frozen=True)
class Support:
  """A categorical support for values in ``[min_value, max_value]``.

  The bins are ``num_bins`` equally spaced points from ``h(min_value)`` to
  ``h(max_value)``; scalars outside the range are clipped.
  """
  min_value: float
  max_value: float
  num_bins: int

  def __post_init__(self):
    if self.num_bins < 2 or not self.max_value > self.min_value:
      raise ValueError(f"Support needs num_bins >= 2 and max > min; got {self}")

  @property
  def points(self):
    """The support points in transformed space, ``[num_bins]``."""
    return jnp.linspace(h(jnp.float32(self.min_value)),
                        h(jnp.float32(self.max_value)), self.num_bins)

  def scalar_to_two_hot(self, x):
    """``[...]`` scalars -> ``[..., num_bins]`` two-hot distributions."""
    x = jnp.clip(jnp.asarray(x, jnp.float32), self.min_value, self.max_value)
    lo_h, hi_h = h(jnp.float32(self.min_value)), h(jnp.float32(self.max_value))
    pos = (h(x) - lo_h) / (hi_h - lo_h) * (self.num_bins - 1)
    pos = jnp.clip(pos, 0.0, self.num_bins - 1)
    low = jnp.clip(jnp.floor(pos), 0, self.num_bins - 2).astype(jnp.int32)
    frac = pos - low
    return (jax.nn.one_hot(low, self.num_bins) * (1.0 - frac)[..., None]
            + jax.nn.one_hot(low + 1, self.num_bins) * frac[..., None])

  def probs_to_scalar(self, probs):
    """``[..., num_bins]`` distributions -> ``[...]`` scalars."""
    return h_inv(jnp.sum(probs * self.points, axis=-1))

  def logits_to_scalar(self, logits):
    """``[..., num_bins]`` logits -> ``[...]`` scalars."""
    return self.probs_to_scalar(jax.nn.softmax(logits, axis=-1))


def cross_entropy(target_probs, logits):
  """``-sum_a p_a log softmax(logits)_a``: ``[..., A]`` targets and logits
  -> ``[...]``."""
  return -jnp.sum(target_probs * jax.nn.log_softmax(logits), axis=-1)


def scale_gradient(x, scale: float):
  """``x`` unchanged, its gradient multiplied by ``scale`` (MuZero halves
  the gradient through the hidden state at each dynamics step)."""
  return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


def negative_cosine_similarity(x, y, eps: float = 1e-8):
  """``-<x, y> / (|x| |y|)`` of ``[..., P]`` vectors -> ``[...]``, in
  ``[-1, 1]`` (SimSiam, Chen & He 2021, as in EfficientZero's temporal
  consistency loss, Ye et al. 2021). A norm below ``eps`` counts as ``eps``
  (zero vectors give 0, not NaN)."""
  unit = lambda v: v / jnp.maximum(
      jnp.linalg.norm(v, axis=-1, keepdims=True), eps)
  return -jnp.sum(unit(x) * unit(y), axis=-1)


def per_shard(fn, rows: int, *arrays):
  """``[G, ...]``: ``fn`` of each block of ``rows`` consecutive rows of the
  ``arrays [B, ...]`` (the batch's ``G = B / rows`` shards, in the order
  the training step concatenates them); ``G = 1``, the whole batch, where
  ``rows`` is 0 or does not cut it into several blocks. A statistic of the
  batch is thus one of each shard, whether a device holds one shard or
  several."""
  b = arrays[0].shape[0]
  if not rows or b <= rows or b % rows:
    return jax.tree.map(lambda o: o[None], fn(*arrays))
  return jax.vmap(fn)(*[a.reshape((b // rows, rows) + a.shape[1:])
                        for a in arrays])


def masked_mean(x, mask, rows: int = 0):
  """The mean of ``x [B, K]`` over the entries where ``mask [B, K]`` is
  true (0 when there are none); with ``rows``, the mean over the batch's
  shards of that of each shard (:func:`per_shard`), as the training step
  averages the loss over its shards on any number of devices."""
  def mean(x, mask):
    mask = mask.astype(x.dtype)
    return jnp.sum(jnp.where(mask > 0, x, 0.0)) / jnp.maximum(
        jnp.sum(mask), 1.0)
  return jnp.mean(per_shard(mean, rows, x, mask))
