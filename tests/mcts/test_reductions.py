"""`mcts.reductions`: the folded row reductions against numpy, and the
compiled CPU program they exist for."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mcts import reductions
from mcts import tree as tree_lib

WIDTHS = [1, 31, 32, 33, 64, 65, 181, 362, 1000]


def _rows(width, dtype):
  rng = np.random.default_rng(width)
  if dtype == np.int32:
    return rng.integers(-1000, 1000, (3, width)).astype(np.int32)
  rows = rng.normal(0, 10, (3, width)).astype(np.float32)
  rows[1, -1] = np.inf       # extremes at both ends of a row
  rows[2, 0] = -np.inf
  return rows


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_row_extremes_equal_numpy(width, dtype):
  rows = _rows(width, dtype)
  np.testing.assert_array_equal(jax.jit(reductions.row_max)(rows),
                                rows.max(-1))
  np.testing.assert_array_equal(jax.jit(reductions.row_min)(rows),
                                rows.min(-1))


@pytest.mark.parametrize("width", WIDTHS)
def test_row_sum_equals_numpy(width):
  ints = _rows(width, np.int32)
  np.testing.assert_array_equal(jax.jit(reductions.row_sum)(ints),
                                ints.sum(-1))
  floats = np.abs(_rows(width, np.float32)[:1])
  np.testing.assert_allclose(jax.jit(reductions.row_sum)(floats),
                             floats.astype(np.float64).sum(-1), rtol=1e-6)


def test_fold_counts_every_element_once():
  # Odd lengths at every fold (362 -> 181 -> 91 -> 46 -> 23 -> 12): the
  # element both halves share must be counted once.
  for width in [362, 91, 33]:
    folded = reductions.fold_in_halves(jnp.arange(width), jnp.add, 0, 12)
    assert folded.shape[-1] <= 12
    assert int(folded.sum()) == width * (width - 1) // 2


def test_folded_width_avoids_both_rewrites():
  assert reductions.folded_width(16, 16) == 16        # nothing to avoid
  assert reductions.folded_width(362, 362) == 23      # <= 32 wide
  assert reductions.folded_width(16, 256 * 16) == 8   # < 4096 elements
  assert reductions.folded_width(362, 256 * 362) == 12
  assert reductions.folded_width(3, 8192 * 3) == 1


def test_log_prior_equals_log_softmax():
  logits = _rows(362, np.float32)[:1] % 7.0
  invalid = np.zeros_like(logits, bool)
  invalid[0, 5] = True
  got = jax.jit(tree_lib.log_prior)(logits, invalid)
  expected = jax.nn.log_softmax(np.where(invalid, -np.inf, logits), axis=-1)
  np.testing.assert_allclose(got[~invalid], expected[~invalid], rtol=1e-5,
                             atol=1e-6)
  assert got[0, 5] == np.finfo(np.float32).min


def test_row_any_equals_numpy():
  rows = np.zeros((3, 300), bool)
  rows[1, 299] = True
  rows[2, 150] = True
  np.testing.assert_array_equal(jax.jit(reductions.row_any)(rows),
                                [False, True, True])


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU compiler")
@pytest.mark.parametrize("shape, rewrite", [((362,), "reduce-window"),
                                            ((256, 16), "ynn_fusion")])
def test_folded_reductions_compile_without_rewrites(shape, rewrite):
  # What the folding is for: XLA's CPU compiler turns a plain reduction of
  # 362 elements into an unfused reduce-window, and one of 4096 floats into
  # a YNNPACK call; a folded one it keeps as its own fused kernel.
  row = jnp.zeros(shape, jnp.float32)
  plain = jax.jit(lambda r: jnp.sum(r, -1) + jnp.max(r, -1)
                  ).lower(row).compile()
  folded = jax.jit(lambda r: reductions.row_sum(r) + reductions.row_max(r)
                   ).lower(row).compile()
  if rewrite not in plain.as_text():
    pytest.skip(f"this XLA does not emit {rewrite} for a plain reduction")
  assert rewrite not in folded.as_text()
