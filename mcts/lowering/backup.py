"""The backup as lowered per platform, with the derivatives of the
loop-free backup along the recorded path on every platform.

On accelerators the backup goes along the path the walk recorded, all
levels at once (`backward_along_path`: an associative scan and one scatter
per array, no loop). On the CPU it goes level by level (`cpu_backup`),
which measured faster there (`benchmarks/path_backup.py`), and the walk
records no path. Both give the same trees up to the rounding of the
returns' sums (`tests/mcts/test_lowering_backup.py`). The derivatives are
`backward_along_path`'s everywhere: its updates have a static bound and can
be reversed.
"""
import dataclasses

import chex
import jax
import jax.numpy as jnp

from mcts.lowering import cpu_backup
from mcts.lowering import platforms
from mcts.tree import Tree


def backward(tree: Tree, leaf: chex.Array, path: chex.Array,
             depth: chex.Array) -> Tree:
  """Backs the leaves' values up to the roots, as lowered for the platform:
  `backward_along_path`'s result and derivatives (on the CPU the result
  comes from `cpu_backup.backward`).

  Args:
    tree: the tree after the expansion.
    leaf: `[B]` int32 index of the just evaluated leaves.
    path: `[B, L + 1]` int32, the leaves' ancestors from the root
      (`path[b, d]` for `d < depth[b]`; on the CPU unspecified).
    depth: `[B]` int32 depth of the leaves, 0 for a simulation that
      changes nothing.
  """
  # Only the node and edge arrays go through `_backward`: what passes a
  # custom derivative unchanged is no longer known to XLA as unchanged.
  arrays = {f: getattr(tree, f) for f in Tree.NODE_FIELDS + Tree.EDGE_FIELDS}
  return tree.replace(**_backward(arrays, leaf, path, depth))


def _arrays_tree(arrays) -> Tree:
  """A `Tree` of the node and edge `arrays` only (the rest None)."""
  return Tree(**{f.name: arrays.get(f.name)
                 for f in dataclasses.fields(Tree)})


def _updated(tree: Tree):
  """The arrays of `tree` a backup changes, by name."""
  return {f: getattr(tree, f) for f in _UPDATED_FIELDS}


# The arrays a backup changes.
_UPDATED_FIELDS = ("node_visits", "node_values", "children_visits",
                   "children_qvalues")


@jax.custom_jvp
def _backward(arrays, leaf, path, depth):
  """`backward` on the node and edge arrays; returns the updated ones."""
  tree = _arrays_tree(arrays)
  return _updated(platforms.by_platform(
      tree, leaf, path, depth, default=backward_along_path,
      cpu=lambda tree, leaf, path, depth: cpu_backup.backward(tree, leaf)))


@_backward.defjvp
def _backward_jvp(primals, tangents):
  arrays, leaf, path, depth = primals
  tree = _arrays_tree(arrays)
  path = platforms.by_platform(
      tree, leaf, path, depth, cpu=cpu_backup.recorded_path,
      default=lambda tree, leaf, path, depth: path)
  _, updated_dot = jax.jvp(
      lambda arrays: _updated(backward_along_path(
          _arrays_tree(arrays), leaf, path, depth)), (arrays,),
      (tangents[0],))
  return _backward(arrays, leaf, path, depth), updated_dot


def backward_along_path(tree: Tree, leaf: chex.Array, path: chex.Array,
                        depth: chex.Array) -> Tree:
  """Backs the leaves' values up to the roots along the recorded paths, all
  levels at once: one gather and one scatter per array, no loop.

  The updates are those `mcts.search.backward` states for each edge
  (n_k, a_k) -> n_{k+1} of the path n_0 (root), ..., n_D (leaf). The
  returns G_k = r(n_{k+1}) + discount(n_{k+1}) * G_{k+1}, a reverse
  composition of the affine maps x -> r + discount * x, come from an
  associative scan (equal to the level-by-level sums up to rounding:
  another order). The
  nodes of a path are distinct, so the levels' updates do not interfere.
  Arguments as in `backward`.
  """
  batch_size, num_nodes = tree.node_visits.shape
  length = path.shape[1] - 1  # L, the most edges a path can have.
  rows = jnp.arange(batch_size)[:, None]
  level = jnp.arange(length)[None]
  nodes = jnp.where(level == depth[:, None], leaf[:, None], path[:, :-1])
  nodes = jnp.concatenate([nodes, leaf[:, None]], axis=1)
  parent, child = nodes[:, :-1], nodes[:, 1:]  # `[B, L]` each.
  on_path = level < depth[:, None]
  reward = tree.node_rewards[rows, child]
  discount = tree.node_discounts[rows, child]
  action = jnp.maximum(tree.action_from_parent[rows, child], 0)

  def compose(outer, inner):
    """x -> outer(inner(x)) for affine maps (r, discount)."""
    return (outer[0] + outer[1] * inner[0], outer[1] * inner[1])

  # The maps of the edges below each parent, composed from the leaf up.
  # (Levels off the path are the identity; the reverse scan calls
  # `fn(inner, outer)`: the map of the lower level comes first.)
  zero = jnp.zeros((), reward.dtype)
  offset, scale = jax.lax.associative_scan(
      lambda inner, outer: compose(outer, inner),
      (jnp.where(on_path, reward, zero),
       jnp.where(on_path, discount, zero + 1)), reverse=True, axis=1)
  leaf_value = tree.node_values[rows[:, 0], leaf]
  returns = offset + scale * leaf_value[:, None]
  count = tree.node_visits[rows, parent] + 1
  old_value = tree.node_values[rows, parent]
  parent_value = old_value + (returns - old_value) / count
  child_value = jnp.where(
      level + 1 < depth[:, None],
      jnp.concatenate([parent_value[:, 1:], parent_value[:, :1]], axis=1),
      leaf_value[:, None])
  # Levels off the path write out of bounds (dropped), each to its own
  # index so that the indices stay unique.
  target = jnp.where(on_path, parent, num_nodes + level)
  in_place = dict(mode="drop", unique_indices=True)
  return tree.replace(
      node_visits=tree.node_visits.at[rows, target].add(1, **in_place),
      node_values=tree.node_values.at[rows, target].set(parent_value,
                                                        **in_place),
      children_visits=tree.children_visits.at[rows, target, action].add(
          1, **in_place),
      children_qvalues=tree.children_qvalues.at[rows, target, action].set(
          reward + discount * child_value, **in_place))
