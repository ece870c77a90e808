"""Continuing a search from a kept subtree (tree reuse between moves):
re-rooting a searched tree on the child that was played (`get_subtree`),
and giving a kept tree its new root's evaluation (`with_new_root`).
"""
from typing import Any

import chex
import jax
import jax.numpy as jnp

from mcts import base
from mcts.tree import Tree, log_prior


def with_new_root(tree: Tree, root: base.RootFnOutput,
                  root_invalid_actions: chex.Array, extra_data: Any) -> Tree:
  """A kept tree whose root takes `root`'s prior, raw value and embedding.

  The root's visits and mean value stay (an empty tree gets `root` as a
  fresh root).
  """
  visits = tree.node_visits[:, 0]
  dtype = tree.node_values.dtype
  return tree.replace(
      node_visits=tree.node_visits.at[:, 0].set(jnp.maximum(visits, 1)),
      raw_values=tree.raw_values.at[:, 0].set(root.value.astype(dtype)),
      node_values=tree.node_values.at[:, 0].set(jnp.where(
          visits > 0, tree.node_values[:, 0], root.value.astype(dtype))),
      children_prior_logits=tree.children_prior_logits.at[:, 0].set(
          log_prior(root.prior_logits).astype(
              tree.children_prior_logits.dtype)),
      embeddings=jax.tree.map(lambda e, r: e.at[:, 0].set(r.astype(e.dtype)),
                              tree.embeddings, root.embedding),
      root_invalid_actions=root_invalid_actions,
      extra_data=extra_data)


def get_subtree(tree: Tree, action: chex.Array) -> Tree:
  """Re-roots every tree of the batch on the child reached by `action`.

  The child's subtree keeps its statistics and moves to the front of the
  same fixed-size arrays, in the order its nodes were created (so a parent
  still comes before its children); the rest is cleared. A tree whose
  `action` was never expanded becomes empty: the next search starts it from
  its root output. Pass the result as `tree=` to a search or policy.

  Args:
    tree: a searched tree, `[B, N, ...]`.
    action: `[B]` int32, the action played at each root.
  """
  batch_size, num_nodes = tree.node_visits.shape
  batch_range = jnp.arange(batch_size)
  new_root = tree.children_index[batch_range, 0, action]

  # keep[n] = n is new_root or its parent is kept (parents come first).
  def mark(keep, n):
    parent = tree.parents[:, n]
    kept = (new_root == n) | ((parent >= 0) & keep[batch_range,
                                                    jnp.maximum(parent, 0)])
    return keep.at[:, n].set(kept), None

  keep, _ = jax.lax.scan(mark, jnp.zeros((batch_size, num_nodes), bool),
                         jnp.arange(1, num_nodes))
  new_index = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, Tree.UNVISITED)
  # old_of_new[b, j]: the old index of the node that moves to slot j.
  target = jnp.where(keep, new_index, num_nodes)
  old_of_new = jnp.zeros((batch_size, num_nodes), jnp.int32).at[
      batch_range[:, None], target].set(jnp.arange(num_nodes), mode="drop")
  used = jnp.arange(num_nodes) < jnp.sum(keep, axis=1, keepdims=True)

  def move(array, empty):
    moved = jnp.take_along_axis(
        array, old_of_new.reshape(old_of_new.shape + (1,) *
                                  (array.ndim - 2)), axis=1)
    mask = used.reshape(used.shape + (1,) * (array.ndim - 2))
    return jnp.where(mask, moved, jnp.asarray(empty, array.dtype))

  def renumber(index):
    """Old node indices to new ones; negative markers stay."""
    flat = index.reshape(batch_size, -1)
    mapped = jnp.take_along_axis(new_index, jnp.maximum(flat, 0), axis=1)
    return jnp.where(flat >= 0, mapped, flat).reshape(index.shape)

  is_root = jnp.arange(num_nodes) == 0
  parents = jnp.where(is_root, Tree.NO_PARENT,
                      renumber(move(tree.parents, Tree.NO_PARENT)))
  return tree.replace(
      node_visits=move(tree.node_visits, 0),
      raw_values=move(tree.raw_values, 0),
      node_values=move(tree.node_values, 0),
      node_rewards=jnp.where(is_root, 0, move(tree.node_rewards, 0)),
      node_discounts=jnp.where(is_root, 0, move(tree.node_discounts, 0)),
      parents=parents,
      action_from_parent=jnp.where(
          is_root, Tree.NO_PARENT,
          move(tree.action_from_parent, Tree.NO_PARENT)),
      children_index=renumber(move(tree.children_index, Tree.UNVISITED)),
      children_prior_logits=move(tree.children_prior_logits, 0),
      children_visits=move(tree.children_visits, 0),
      children_qvalues=move(tree.children_qvalues, 0),
      embeddings=jax.tree.map(lambda e: move(e, 0), tree.embeddings),
      root_invalid_actions=jnp.zeros_like(tree.root_invalid_actions))
