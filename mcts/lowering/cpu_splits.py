"""The CPU's work-arounds for XLA's splitting of operations over threads.

XLA's CPU compiler splits an operation over the cores when it estimates that
it reads or writes `CPU_SPLIT_BYTES`; on a few cores the hand-off costs more
than a walk level's work. For large batched trees (`avoid_cpu_splits`) the
search on the CPU therefore
  * reads the rows of the nodes the walk selects at through small in-place
    buffers (`node_rows`), giving the selection rules a one-node view;
  * backs up in chunks of levels (`cpu_backup.backward_in_chunks`), one
    scatter per array for a chunk instead of one per level
(`cpu_backup`). Both give the same trees as the plain search.
"""
import os

import chex
import jax
import jax.numpy as jnp

from mcts.tree import Tree


# The fields of a one-node view: the node's own rows of the `Tree` arrays.
VIEW_FIELDS = Tree.NODE_FIELDS + Tree.EDGE_FIELDS


def node_rows(tree: Tree, node: chex.Array, buffers):
  """The rows of the node and edge arrays at `node` `[B]`, written into
  `buffers` (from `row_buffers`) in place and read back, each `[B, 1,
  ...]`: XLA's CPU compiler never splits a fusion that ends in an in-place
  update over threads (see `CPU_SPLIT_BYTES`).

  Returns:
    the rows as a dict by field name, and the updated buffers.
  """
  batch_range = jnp.arange(node.shape[0])
  buffers = {f: jax.lax.dynamic_update_slice_in_dim(
      buffers[f], getattr(tree, f)[batch_range, node][:, None], 0, axis=0)
             for f in VIEW_FIELDS}
  return {f: b[:-1] for f, b in buffers.items()}, buffers


def root_view(tree: Tree) -> Tree:
  """`tree` with the roots' rows as its only node: static slices, which XLA
  does not split."""
  return tree.replace(**{f: getattr(tree, f)[:, :1] for f in VIEW_FIELDS})


def node_view(tree: Tree, node: chex.Array, buffers):
  """`tree` with the rows at `node` `[B]` as its only node (node 0), read
  through `buffers` (`node_rows`); returns it and the updated buffers."""
  rows, buffers = node_rows(tree, node, buffers)
  return tree.replace(**rows), buffers


def row_buffers(tree: Tree):
  """Buffers for `node_rows`, `[B + 1, 1, ...]`: the spare row keeps the
  update from covering the whole buffer, which XLA would turn into no
  write at all."""
  return {f: jnp.zeros((x.shape[0] + 1, 1) + x.shape[2:], x.dtype)
          for f in VIEW_FIELDS for x in (getattr(tree, f),)}


# XLA's CPU compiler splits an operation over the cores when it estimates
# that it reads or writes this many bytes, and counts a gather as reading
# all of its array. On a few cores the hand-off costs more than a walk
# level's gathers (4.8 instead of 0.4 us per level at B=16, 16 actions, 800
# nodes: `benchmarks/studies/cpu_split.py`).
CPU_SPLIT_BYTES = 512 * 1024
# Above this many bytes per row read (B x A numbers), a split gather's work
# pays for the hand-off: B=256 with 362 actions (370 KiB) was 1.24x slower
# through buffers, B=16 with 362 actions (23 KiB) 0.83-0.99x the time.
CPU_ROWS_IN_PLACE_MAX_BYTES = 64 * 1024


def avoid_cpu_splits(tree: Tree) -> bool:
  """Whether a search on the CPU should work around XLA's splits (the walk
  reads its rows through buffers, `node_rows`; the backup goes in chunks,
  `backward_in_chunks`). That is where XLA would split: for a batch of
  trees (one tree's rows are dynamic slices, which XLA does not split), in
  a process that may run on several cores (which XLA counts the same way),
  once the edge arrays, which a selection rule reads together, reach
  `CPU_SPLIT_BYTES`; and while a row read stays under
  `CPU_ROWS_IN_PLACE_MAX_BYTES`. Otherwise the buffers' extra updates cost
  more than they save (the walk's buffers 5-15% with one core)."""
  edges = [getattr(tree, f) for f in Tree.EDGE_FIELDS]
  row_bytes = max(x.nbytes // x.shape[1] for x in edges)
  return (tree.node_visits.shape[0] > 1 and schedulable_cores() > 1
          and sum(x.nbytes for x in edges) >= CPU_SPLIT_BYTES
          and row_bytes < CPU_ROWS_IN_PLACE_MAX_BYTES)


def schedulable_cores() -> int:
  """The CPU cores this process may run on."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1
