"""The backup as lowered for the CPU: a loop over the levels of the paths.

On the CPU a loop whose trip count is the deepest path's depth measured
faster than `backup.backward_along_path`, whose static bound costs work on
every level a path could have: searches lowered as for an accelerator took
1.5-4.5x as long on 2 cores in 9 of 10 cells (`benchmarks/path_backup.py`).
Gives the same trees (`tests/mcts/test_lowering_backup.py`).
"""
import chex
import jax
import jax.numpy as jnp

from mcts.lowering import cpu_splits
from mcts.lowering import platforms
from mcts import reductions
from mcts.tree import Tree


def backward(tree: Tree, leaf: chex.Array) -> Tree:
  """`backward_by_level`, or for the trees for which
  `cpu_splits.avoid_cpu_splits` holds, `backward_in_chunks`: each of a
  level's scatters into a large tree array would be split over threads, a
  chunk's are split once."""
  if cpu_splits.avoid_cpu_splits(tree):
    return backward_in_chunks(tree, leaf)
  return backward_by_level(tree, leaf)


def recorded_path(tree: Tree, leaf: chex.Array, path: chex.Array,
                  depth: chex.Array) -> chex.Array:
  """The path the walk records on other platforms, found from the parents:
  `path` `[B, L + 1]` with `path[b, d]` the ancestor of `leaf[b]` at depth
  `d < depth[b]` (a loop over the levels; the indices carry no
  derivatives)."""
  rows = jnp.arange(leaf.shape[0])

  def up(state):
    node, level, path = state
    active = level > 0
    node = jnp.where(active, tree.parents[rows, node], node)
    level = level - active
    path = path.at[rows, level].set(jnp.where(active, node, path[rows, level]))
    return node, level, path

  return jax.lax.while_loop(lambda state: jnp.any(state[1] > 0), up,
                            (leaf, depth, path))[2]


# Tree levels `backward_in_chunks` takes per `while_loop` iteration.
BACKUP_CHUNK = 8


def backward_in_chunks(tree: Tree, leaf: chex.Array) -> Tree:
  """`backward_by_level`, `BACKUP_CHUNK` edges per loop iteration, whose
  levels are vectorised: one gather or scatter per array for all of them.
  The nodes of a path are distinct, so the updates of several levels do
  not interfere."""
  batch_size, num_nodes = tree.node_visits.shape
  rows = jnp.arange(batch_size)[:, None]
  root = Tree.ROOT_INDEX
  levels = BACKUP_CHUNK

  def not_at_root(state):
    return reductions.row_any(state[0] != root)

  def edges_up(node):
    """The next `levels` edges above `node` `[B]`: child and parent, `[B,
    levels]` each, both the root above the root."""
    nodes = [node]
    for _ in range(levels):
      nodes.append(jnp.where(nodes[-1] != root,
                             tree.parents[rows[:, 0], nodes[-1]], root))
    return jnp.stack(nodes[:-1], axis=1), jnp.stack(nodes[1:], axis=1)

  def some_levels(state):
    # `node_value` is V(node), already updated.
    node, value, node_value, visits, values, children_visits, qvalues = state
    child, parent = edges_up(node)
    active = child != root
    action = jnp.maximum(tree.action_from_parent[rows, child], 0)
    reward = tree.node_rewards[rows, child]
    discount = tree.node_discounts[rows, child]
    returns = []
    for level in range(levels):
      value = jnp.where(active[:, level],
                        reward[:, level] + discount[:, level] * value, value)
      returns.append(value)
    returns = jnp.stack(returns, axis=1)
    # Levels above the root write out of bounds (dropped), each to its own
    # index so that the indices stay unique.
    target = jnp.where(active, parent, num_nodes + jnp.arange(levels))
    in_place = dict(mode="drop", unique_indices=True)
    # As in `backward_by_level`, counts are read after the update.
    visits = visits.at[rows, target].add(1, **in_place)
    count = visits[rows, parent]
    old_value = values[rows, parent]
    parent_value = old_value + (returns - old_value) / count
    child_value = jnp.concatenate([node_value[:, None], parent_value[:, :-1]],
                                  axis=1)
    values = values.at[rows, target].set(parent_value, **in_place)
    children_visits = children_visits.at[rows, target, action].add(
        1, **in_place)
    qvalues = qvalues.at[rows, target, action].set(
        reward + discount * child_value, **in_place)
    return (parent[:, -1], value, parent_value[:, -1], visits, values,
            children_visits, qvalues)

  leaf_value = tree.node_values[rows[:, 0], leaf]
  state = (leaf, leaf_value, leaf_value, tree.node_visits, tree.node_values,
           tree.children_visits, tree.children_qvalues)
  _, _, _, visits, values, children_visits, qvalues = jax.lax.while_loop(
      not_at_root, some_levels, state)
  return tree.replace(node_visits=visits, node_values=values,
                      children_visits=children_visits,
                      children_qvalues=qvalues)


def backward_by_level(tree: Tree, leaf: chex.Array) -> Tree:
  """Backs the leaves' values up to the roots, level by level.

  For each edge (parent, a) -> node on the path, from the leaf up:
    G <- r(parent, a) + discount(parent, a) * G
    V(parent) <- (V(parent) * N(parent) + G) / (N(parent) + 1)
    N(parent) <- N(parent) + 1,  N(parent, a) <- N(parent, a) + 1
    Q(parent, a) <- r(parent, a) + discount(parent, a) * V(node)
  starting from G = V(leaf).

  Args:
    tree: the tree after `expand`.
    leaf: `[B]` int32 index of the just evaluated leaves.
  """
  batch_size = tree.node_visits.shape[0]
  batch_range = jnp.arange(batch_size)

  def not_at_root(state):
    return reductions.row_any(state[0] != Tree.ROOT_INDEX)

  def one_level(state):
    # `node_value` is V(node), already updated: each array is read at one
    # place only, which lets XLA update it in place without a copy.
    # Trees already at their root rewrite their root's entries unchanged:
    # every write stays in bounds, so XLA updates the arrays in place.
    node, value, node_value, visits, values, children_visits, qvalues = state
    active = node != Tree.ROOT_INDEX
    parent = jnp.where(active, tree.parents[batch_range, node],
                       Tree.ROOT_INDEX)
    action = jnp.maximum(tree.action_from_parent[batch_range, node], 0)
    reward = tree.node_rewards[batch_range, node]
    discount = tree.node_discounts[batch_range, node]
    value = reward + discount * value
    in_place = dict(mode="promise_in_bounds", unique_indices=True)
    # The count is read after the update: reading `visits` before writing
    # it made XLA copy the whole array on every level.
    visits = visits.at[batch_range, parent].add(
        active.astype(visits.dtype), **in_place)
    count = visits[batch_range, parent]
    old_value = values[batch_range, parent]
    parent_value = jnp.where(active, old_value + (value - old_value) / count,
                             old_value)
    qvalue = jnp.where(active, reward + discount * node_value,
                       qvalues[batch_range, parent, action])
    values = values.at[batch_range, parent].set(parent_value, **in_place)
    children_visits = children_visits.at[batch_range, parent, action].add(
        active.astype(children_visits.dtype), **in_place)
    qvalues = qvalues.at[batch_range, parent, action].set(qvalue,
                                                          **in_place)
    return (parent, value, parent_value, visits, values, children_visits,
            qvalues)

  leaf_value = tree.node_values[batch_range, leaf]
  state = (leaf, leaf_value, leaf_value, tree.node_visits, tree.node_values,
           tree.children_visits, tree.children_qvalues)
  _, _, _, visits, values, children_visits, qvalues = platforms.while_levels(
      not_at_root, one_level, state)
  return tree.replace(node_visits=visits, node_values=values,
                      children_visits=children_visits,
                      children_qvalues=qvalues)
