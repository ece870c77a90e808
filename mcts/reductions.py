"""Sums, extremes and `any` over a row's last axis `[..., A]`, written so
that XLA's CPU compiler emits them as one fused, vectorised kernel.

Two rewrites in XLA's CPU pipeline cost a selection rule more than its
arithmetic:
  * a reduction over more than 32 elements becomes an unfused
    `reduce-window` of 32 and a reduction of the partial results
    (`TreeReductionRewriter`): two or three kernels each, a dozen extra per
    tree level for a rule over 362 actions;
  * a sum, max or min of at least 4096 floats goes to YNNPACK (`ynn_fusion`),
    whose call cost 13 us per tree level for 256 rows of 16 actions,
    against about 1 us for XLA's own kernel.
Folding the row in halves first (`op(x[:m], x[m:])`, elementwise, fused
into the reduction) until it is at most 32 wide and has fewer than 4096
elements avoids both. It is the same arithmetic on every platform; choosing
it per platform (`jax.lax.platform_dependent` per reduction) made a Gumbel
search take 1.5x as long to compile.

Interleaved A/B on 2 cores, same trees: one tree of 362 actions searched
1.6-1.8x faster, 256 trees 1.05-1.25x; 64-128 trees of 362 actions took
0.92-1.11x the time, within this machine's noise.

Also here: when a selection rule reduces a row in one variadic reduction
instead of several (`reduce_in_one_pass`), which depends on how many trees
`search` maps the rule over (`TREE_AXIS`).
"""

import chex
import jax
import jax.numpy as jnp

# The name of the `vmap` axis over which `search` maps the selection rules,
# one tree each.
TREE_AXIS = "mcts_trees"

# Below this many elements (see `elements_across_trees`),
# the selection rules reduce a row in one variadic reduction: an argmax as
# one (value, index) reduction, a softmax's maximum and sum as one online
# reduction, the children's statistics as one. On CPU that is one kernel
# instead of several, and it keeps the walk of one tree of 16 actions under
# the size (1 KiB) below which XLA compiles a loop as one function: pUCT
# 1.5-2x and Gumbel 1.2-1.9x faster at batch 1. For more elements the
# separate reductions, which XLA vectorises and a variadic one it does not,
# are faster: argmax 1.6x for one tree of 362 actions, pUCT 1.15-1.35x with
# 16-256 trees of 16 actions.
ONE_PASS_BELOW = 64


def elements_across_trees(row: chex.Array) -> int:
  """`row.size` times the number of trees `search` maps a selection rule
  over (1 outside a search): how many elements a reduction of `row` touches
  in all."""
  try:
    # psum of a Python constant is the axis size, a Python int (as
    # jax.lax.axis_size, which needs jax >= 0.6.1).
    num_trees = jax.lax.psum(1, TREE_AXIS)
  except NameError:
    num_trees = 1
  return num_trees * row.size


def reduce_in_one_pass(row: chex.Array) -> bool:
  """Whether a selection rule should reduce `row` `[..., A]` along its last
  axis in one variadic reduction: when `elements_across_trees(row)` is below
  `ONE_PASS_BELOW`."""
  return elements_across_trees(row) < ONE_PASS_BELOW


# XLA's `TreeReductionRewriter` window on the CPU: reductions over at most
# this many elements are not rewritten.
UNREWRITTEN_WIDTH = 32
# From this many elements on, XLA's CPU compiler hands float reductions to
# YNNPACK.
YNNPACK_ELEMENTS = 4096


def folded_width(width: int, elements: int) -> int:
  """The width a row of `width` is folded to when a reduction of it touches
  `elements` in all: at most `UNREWRITTEN_WIDTH`, and halved until the
  folded rows have fewer than `YNNPACK_ELEMENTS` elements."""
  rows = elements // width
  while width > UNREWRITTEN_WIDTH or (width > 1 and
                                      rows * width >= YNNPACK_ELEMENTS):
    width = (width + 1) // 2
  return width


def fold_in_halves(row: chex.Array, op, identity, width: int) -> chex.Array:
  """`row` `[..., A]` folded to `[..., width]` by `op` of its two halves,
  repeatedly. For an odd length the halves overlap by one element: counted
  twice by an idempotent `op` (max, min, or; `identity` None), otherwise
  replaced by `identity` in the second half."""
  while row.shape[-1] > width:
    num = row.shape[-1]
    half = (num + 1) // 2
    second = row[..., num - half:]
    if num % 2 and identity is not None:
      second = jnp.where(jnp.arange(half) == 0, identity, second)
    row = op(row[..., :half], second)
  return row


def _reduce(row, op, identity, reducer):
  width = folded_width(row.shape[-1], elements_across_trees(row))
  return reducer(fold_in_halves(row, op, identity, width), axis=-1)


def row_sum(row: chex.Array) -> chex.Array:
  """`sum(row, axis=-1)` `[...]`."""
  return _reduce(row, jnp.add, 0, jnp.sum)


def row_max(row: chex.Array) -> chex.Array:
  """`max(row, axis=-1)` `[...]`."""
  return _reduce(row, jnp.maximum, None, jnp.max)


def row_min(row: chex.Array) -> chex.Array:
  """`min(row, axis=-1)` `[...]`."""
  return _reduce(row, jnp.minimum, None, jnp.min)


def row_any(row: chex.Array) -> chex.Array:
  """`any(row, axis=-1)` `[...]` of a bool row."""
  return _reduce(row, jnp.logical_or, None, jnp.any)
