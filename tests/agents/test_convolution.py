"""agents/algorithms/convolution.py: conv_same and its hand-written gradient
against lax.conv_general_dilated and jax's own gradient of it."""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.algorithms.convolution import Conv2D, conv_same


def _reference(x, w):
  kh, kw = w.shape[:2]
  return jax.lax.conv_general_dilated(
      x, w, (1, 1), ((kh // 2, kh // 2), (kw // 2, kw // 2)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("kernel", [(3, 3), (1, 1), (3, 5)])
def test_values_and_gradients_match_lax(kernel, dtype):
  with jax.enable_x64(dtype == jnp.float64):
    kx, kw_, kc = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (5, 6, 7, 4), dtype)
    w = jax.random.normal(kw_, kernel + (4, 3), dtype)
    cotangent = jax.random.normal(kc, (5, 6, 7, 3), dtype)
    tol = 1e-12 if dtype == jnp.float64 else 1e-4

    y = conv_same(x, w)
    assert y.shape == (5, 6, 7, 3) and y.dtype == dtype
    np.testing.assert_allclose(y, _reference(x, w), rtol=tol, atol=tol)
    ours = jax.vjp(conv_same, x, w)[1](cotangent)
    theirs = jax.vjp(_reference, x, w)[1](cotangent)
    for a, b in zip(ours, theirs):
      assert a.shape == b.shape
      np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_gradient_inside_a_scan_and_under_vmap():
  """The hand-written gradient is what the loops of a training step use."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 6, 5, 3))
  w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 2))

  def loss(conv, w):
    return jnp.sum(jnp.tanh(jax.vmap(conv, in_axes=(0, None))(x, w)))

  def descend(conv):
    step = lambda w, _: (w - 0.1 * jax.grad(lambda v: loss(conv, v))(w),
                         None)
    return jax.jit(lambda w: jax.lax.scan(step, w, None, length=3)[0])(w)

  np.testing.assert_allclose(descend(conv_same), descend(_reference),
                             rtol=1e-4, atol=1e-5)


def test_module_parameters_and_kernel_check():
  f = hk.without_apply_rng(hk.transform(lambda x: Conv2D(8, 3)(x)))
  x = jnp.ones((2, 6, 7, 2))
  params = f.init(jax.random.PRNGKey(0), x)
  (w, b), = [(p["w"], p["b"]) for p in params.values()]
  assert w.shape == (3, 3, 2, 8) and b.shape == (8,)
  assert np.all(b == 0) and 0 < np.std(w) < 1
  np.testing.assert_allclose(f.apply(params, x), _reference(x, w) + b,
                             rtol=1e-6)
  with pytest.raises(ValueError, match="kernel must be odd, got 2"):
    hk.transform(lambda x: Conv2D(8, 2)(x)).init(jax.random.PRNGKey(0), x)
