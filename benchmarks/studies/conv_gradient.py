"""What a convolution's gradient costs inside a loop on this platform.

The training step takes its gradient steps in a ``lax.scan``. This times,
on ``[B, H, W, C]`` activations, the gradient of ``--layers`` same-padded
3x3 convolutions (with ReLUs, one shared kernel) with respect to the kernel:

* ``lax``: jax's own gradient of ``lax.conv_general_dilated``;
* ``conv_same``: :func:`agents.algorithms.convolution.conv_same`, whose
  gradient is written as canonical convolutions;

each once at the top level of a jitted function and once per step of a
``lax.scan`` of ``--steps`` gradient steps (median of ``--repeats``).

  python -m benchmarks.studies.conv_gradient
  python -m benchmarks.studies.conv_gradient --batch 256 --channels 32
"""
import argparse

import jax
import jax.numpy as jnp

from agents.algorithms.convolution import conv_same
from benchmarks import common


def lax_conv(x, w):
  return jax.lax.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch", type=int, default=1536)
  p.add_argument("--height", type=int, default=6)
  p.add_argument("--width", type=int, default=7)
  p.add_argument("--channels", type=int, default=16)
  p.add_argument("--layers", type=int, default=4)
  p.add_argument("--steps", type=int, default=4)
  p.add_argument("--repeats", type=int, default=5)
  a = p.parse_args()
  kx, kw = jax.random.split(jax.random.PRNGKey(0))
  x = jax.random.normal(kx, (a.batch, a.height, a.width, a.channels))
  w = 0.1 * jax.random.normal(kw, (3, 3, a.channels, a.channels))
  print(f"{jax.devices()[0].platform}: gradient of {a.layers} 3x3 "
        f"convolutions on {tuple(x.shape)}, seconds per gradient")
  print(f"{'':10s} {'top level':>10s} {'in a scan':>10s}")
  for name, conv in (("lax", lax_conv), ("conv_same", conv_same)):
    def loss(w, x, conv=conv):
      y = x
      for _ in range(a.layers):
        y = jax.nn.relu(conv(y, w))
      return jnp.sum(y)

    grad = jax.jit(jax.grad(loss))
    step = lambda w, _, loss=loss: (w - 1e-3 * jax.grad(loss)(w, x), None)
    scan = jax.jit(lambda w, step=step: jax.lax.scan(
        step, w, None, length=a.steps)[0])
    top = common.median_seconds(grad, (w, x), a.repeats)
    looped = common.median_seconds(scan, (w,), a.repeats) / a.steps
    print(f"{name:10s} {top:10.3f} {looped:10.3f}")


if __name__ == "__main__":
  main()
