"""A stride-1, same-padded 2-D convolution whose gradient XLA:CPU runs
fast inside loops: how the convolutional torso of
:mod:`agents.algorithms.muzero` is made fast on the CPU.

Why: jax's own gradient of ``lax.conv_general_dilated`` is two more
convolutions in non-canonical dimension orders (the weight gradient
contracts over the batch). At the top level of a jitted function XLA:CPU
rewrites them into its canonical ``NHWC x HWIO`` form, which it runs with
Eigen; inside a ``while`` loop, such as the ``lax.scan`` over a training
iteration's gradient steps, it did not (jax 0.10.2) and fell back to a
generic loop nest: four 3x3 convolutions of 16 channels on ``[1536, 6, 7,
16]``, forward and backward, took 0.10 s at the top level and 1.01 s in a
scan. :func:`conv_same` writes both gradients as canonical convolutions
itself (the transposes are explicit), so the scan takes 0.08 s
(``python -m benchmarks.studies.conv_gradient``). The
values are the same as ``lax.conv_general_dilated``'s and its gradient's
(tests/agents/test_convolution.py).
"""
from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(x, w, kernel):
  """``x [B, H, W, I] * w [h, w, I, O] -> [B, H', W', O]``, padded by half
  of ``kernel (kh, kw)`` on each side."""
  (kh, kw) = kernel
  return jax.lax.conv_general_dilated(
      x, w, (1, 1), ((kh // 2, kh // 2), (kw // 2, kw // 2)),
      dimension_numbers=_DIMENSIONS)


@jax.custom_vjp
def conv_same(x, w):
  """``x [B, H, W, I]``, ``w [kh, kw, I, O]`` (odd ``kh``, ``kw``) ->
  ``[B, H, W, O]``: the stride-1 convolution with zero padding that keeps
  the size."""
  return _conv(x, w, w.shape[:2])


def _conv_same_forward(x, w):
  return conv_same(x, w), (x, w)


def _conv_same_backward(residuals, dy):
  """The input gradient is ``dy`` convolved with the flipped kernel, its
  input and output channels swapped; the weight gradient is ``x`` with
  channels as the batch convolved with ``dy`` with the batch as the input
  channels (each ``[kh, kw]`` output is one kernel tap)."""
  x, w = residuals
  kernel = w.shape[:2]
  dx = _conv(dy, jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2), kernel)
  dw = _conv(x.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3), kernel)
  return dx, dw.transpose(1, 2, 0, 3)   # [I, kh, kw, O] -> [kh, kw, I, O]


conv_same.defvjp(_conv_same_forward, _conv_same_backward)


class Conv2D(hk.Module):
  """``[B, H, W, I] -> [B, H, W, channels]``: :func:`conv_same` plus a
  bias, with haiku's ``Conv2D`` initialisation (truncated normal, fan-in
  scaled, unless ``w_init``)."""

  def __init__(self, channels: int, kernel: int, w_init=None, name=None):
    super().__init__(name=name)
    if kernel % 2 != 1:
      raise ValueError(f"kernel must be odd, got {kernel}")
    self.channels = channels
    self.kernel = kernel
    self.w_init = w_init

  def __call__(self, x):
    fan_in = self.kernel * self.kernel * x.shape[-1]
    w_init = self.w_init or hk.initializers.TruncatedNormal(
        1.0 / fan_in ** 0.5)
    w = hk.get_parameter(
        "w", (self.kernel, self.kernel, x.shape[-1], self.channels),
        x.dtype, w_init)
    b = hk.get_parameter("b", (self.channels,), x.dtype, jnp.zeros)
    return conv_same(x, w) + b
