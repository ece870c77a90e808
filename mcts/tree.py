"""The search tree: fixed-shape arrays, one tree per batch element.

Layout. The child reached by action `a` from node `n` is
`children_index[b, n, a]`. Selection reads, per node, three rows of `A`
numbers: the prior log-probabilities (the model's logits normalised once,
when the node is expanded, so that selection gets the prior by an `exp`
instead of a softmax at every step), the children's visit counts and their
Q-values
Q(n, a) = r(n, a) + discount(n, a) * V(child), all stored per edge so that a
row is one contiguous read. Rewards, discounts and values are stored per node
(`[B, N]`); the per-edge views that mctx stores (`children_values`,
`children_rewards`, `children_discounts`, `[B, N, A]`) are derived on demand
by a gather. A search allocates four `[B, N, A]` arrays where mctx allocates
six.

Every method works on a batched tree (arrays `[B, N, ...]`, indices `[B]`)
and on a single tree as seen by an action selection function mapped over
the batch (arrays `[N, ...]`, a scalar index).
"""
from typing import Any, ClassVar, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mcts import base
from mcts import reductions


@chex.dataclass(frozen=True)
class Tree:
  """A batch of search trees with room for `N = num_simulations + 1` nodes.

  Node `0` is the root; the node first expanded by simulation `i` has index
  `i + 1`.

  Attributes:
    node_visits: `[B, N]` int32 visit counts (a node's own evaluation counts).
    raw_values: `[B, N]` the model's value of each node.
    node_values: `[B, N]` mean of the returns backed up through each node.
    node_rewards: `[B, N]` reward on the edge from the parent into the node.
    node_discounts: `[B, N]` discount on the edge from the parent.
    parents: `[B, N]` int32 parent index, `NO_PARENT` for the root and for
      nodes not expanded yet.
    action_from_parent: `[B, N]` int32 action leading from the parent.
    children_index: `[B, N, A]` int32 child index, `UNVISITED` if none,
      `INVALID` for an action the model marked illegal at the node.
    children_prior_logits: `[B, N, A]` the model's policy at a node as
      normalised logits (log-probabilities: the model's logits minus their
      logsumexp; the same policy, and equal to mctx's logits up to a
      per-node constant).
    children_visits: `[B, N, A]` int32 visit counts of the children.
    children_qvalues: `[B, N, A]` Q-values of the edges, 0 if unvisited.
    embeddings: pytree of `[B, N, ...]` model states.
    root_invalid_actions: `[B, A]` 1 where an action is invalid at the root.
    extra_data: any pytree of `[B, ...]` arrays the selection rules need.
  """
  node_visits: chex.Array
  raw_values: chex.Array
  node_values: chex.Array
  node_rewards: chex.Array
  node_discounts: chex.Array
  parents: chex.Array
  action_from_parent: chex.Array
  children_index: chex.Array
  children_prior_logits: chex.Array
  children_visits: chex.Array
  children_qvalues: chex.Array
  embeddings: Any
  root_invalid_actions: chex.Array
  extra_data: Any

  # The per-node fields, `[B, N]`, and the per-edge ones, `[B, N, A]`.
  NODE_FIELDS: ClassVar[tuple] = (
      "node_visits", "raw_values", "node_values", "node_rewards",
      "node_discounts", "parents", "action_from_parent")
  EDGE_FIELDS: ClassVar[tuple] = (
      "children_index", "children_prior_logits", "children_visits",
      "children_qvalues")

  ROOT_INDEX: ClassVar[int] = 0
  NO_PARENT: ClassVar[int] = -1
  UNVISITED: ClassVar[int] = -1
  INVALID: ClassVar[int] = -2

  @property
  def num_actions(self) -> int:
    return self.children_index.shape[-1]

  @property
  def num_simulations(self) -> int:
    return self.node_visits.shape[-1] - 1

  def infer_batch_size(self) -> int:
    if self.node_visits.ndim != 2:
      raise ValueError("infer_batch_size needs a batched tree, node_visits "
                       f"[B, N]; got shape {self.node_visits.shape}.")
    return self.node_visits.shape[0]

  # ---- Per-edge statistics of the children of given nodes: `[..., A]`.

  def _gather_children(self, node_array, children):
    """`node_array` at `children`, 0 where a child is not expanded."""
    safe = jnp.maximum(children, 0)
    if node_array.ndim == 1:
      values = node_array[safe]
    else:
      values = jnp.take_along_axis(node_array, safe, axis=-1)
    return jnp.where(children >= 0, values, jnp.zeros((), node_array.dtype))

  def _row(self, array, indices):
    """`array[b, indices[b]]`: `[B, A]` (or `[A]` for a single tree)."""
    if self.node_visits.ndim == 1:
      return array[indices]
    return array[jnp.arange(self.node_visits.shape[0]), indices]

  def invalid_actions_at(self, indices, depth=None) -> chex.Array:
    """bool `[B, A]` (or `[A]`): the actions not to select at `indices`,
    those the model marked invalid and, at depth 0, the root's."""
    invalid = self._row(self.children_index, indices) == Tree.INVALID
    if depth is None:
      return invalid
    return invalid | ((self.root_invalid_actions != 0) & (depth == 0))

  def children_visits_at(self, indices) -> chex.Array:
    return self._row(self.children_visits, indices)

  def children_prior_logits_at(self, indices) -> chex.Array:
    return self._row(self.children_prior_logits, indices)

  def qvalues(self, indices) -> chex.Array:
    """Q(s, a) = r(s, a) + discount(s, a) * V(child) for the children of
    `indices` (`[B]`, or a scalar for a single tree): `[B, A]` (or `[A]`).
    Unexpanded children have Q = 0 (the qtransforms complete them)."""
    return self._row(self.children_qvalues, indices)

  # ---- mctx's per-edge arrays, `[B, N, A]`, derived from the per-node ones.

  def _all_children(self, node_array):
    children = self.children_index
    if self.node_visits.ndim == 1:
      return self._gather_children(node_array, children)
    flat = children.reshape(children.shape[0], -1)
    return self._gather_children(node_array, flat).reshape(children.shape)

  @property
  def children_values(self) -> chex.Array:
    return self._all_children(self.node_values)

  @property
  def children_rewards(self) -> chex.Array:
    return self._all_children(self.node_rewards)

  @property
  def children_discounts(self) -> chex.Array:
    return self._all_children(self.node_discounts)

  def summary(self) -> base.SearchSummary:
    """Visit counts, visit probabilities, value and Q-values of the roots."""
    value = self.node_values[:, Tree.ROOT_INDEX]
    roots = jnp.full(value.shape, Tree.ROOT_INDEX, jnp.int32)
    visit_counts = self.children_visits_at(roots).astype(value.dtype)
    total = jnp.sum(visit_counts, axis=-1, keepdims=True)
    visit_probs = jnp.where(total > 0, visit_counts / jnp.maximum(total, 1),
                            1.0 / self.num_actions)
    return base.SearchSummary(visit_counts=visit_counts,
                              visit_probs=visit_probs, value=value,
                              qvalues=self.qvalues(roots))


def log_prior(logits: chex.Array,
              invalid: Optional[chex.Array] = None) -> chex.Array:
  """The normalised logits `log softmax(logits)` `[..., A]` that the tree
  stores; actions marked in `invalid` (bool `[..., A]`) get the lowest
  float."""
  if invalid is not None:
    logits = jnp.where(invalid, -jnp.inf, logits)
  shifted = logits - reductions.row_max(logits)[..., None]
  logp = shifted - jnp.log(reductions.row_sum(jnp.exp(shifted)))[..., None]
  lowest = jnp.finfo(logp.dtype).min
  return jnp.maximum(logp, lowest)


def init_tree(root: base.RootFnOutput, num_simulations: int,
              root_invalid_actions: chex.Array, extra_data: Any,
              embedding_dtype: Any = None) -> Tree:
  """A batch of empty trees whose root (node 0) is evaluated by `root`.

  Args:
    root: prior_logits `[B, A]`, value `[B]`, embedding pytree `[B, ...]`.
    num_simulations: the trees get `num_simulations + 1` nodes.
    root_invalid_actions: `[B, A]`.
    extra_data: stored unchanged.
    embedding_dtype: if given, the dtype of the stored floating-point
      embedding leaves.
  """
  batch_size, num_actions = root.prior_logits.shape
  num_nodes = num_simulations + 1
  dtype = root.value.dtype
  node_shape = (batch_size, num_nodes)

  def node_array(fill, dtype, first):
    return jnp.full(node_shape, fill, dtype).at[:, 0].set(first)

  def storage(e):
    dtype = e.dtype
    if embedding_dtype is not None and jnp.issubdtype(dtype, jnp.floating):
      dtype = embedding_dtype
    return jnp.zeros((batch_size, num_nodes) + e.shape[1:],
                     dtype).at[:, 0].set(e.astype(dtype))

  embeddings = jax.tree.map(storage, root.embedding)
  children_prior_logits = jnp.zeros(
      (batch_size, num_nodes, num_actions),
      root.prior_logits.dtype).at[:, 0].set(log_prior(root.prior_logits))
  return Tree(
      node_visits=node_array(0, jnp.int32, 1),
      raw_values=node_array(0, dtype, root.value),
      node_values=node_array(0, dtype, root.value),
      node_rewards=jnp.zeros(node_shape, dtype),
      node_discounts=jnp.zeros(node_shape, dtype),
      parents=jnp.full(node_shape, Tree.NO_PARENT, jnp.int32),
      action_from_parent=jnp.full(node_shape, Tree.NO_PARENT, jnp.int32),
      children_index=jnp.full((batch_size, num_nodes, num_actions),
                              Tree.UNVISITED, jnp.int32),
      children_prior_logits=children_prior_logits,
      children_visits=jnp.zeros(children_prior_logits.shape, jnp.int32),
      children_qvalues=jnp.zeros(children_prior_logits.shape, dtype),
      embeddings=embeddings,
      root_invalid_actions=root_invalid_actions,
      extra_data=extra_data)


def tree_nbytes(batch_size: int, num_simulations: int, num_actions: int,
                embedding: Any, *, value_dtype: Any = jnp.float32,
                embedding_dtype: Any = None, extra_data: Any = None) -> int:
  """The bytes of the `Tree` a search of these sizes allocates.

  Args:
    batch_size: B.
    num_simulations: the tree has `num_simulations + 1` nodes.
    num_actions: A.
    embedding: pytree of arrays or `jax.ShapeDtypeStruct`s for ONE root
      (no batch dimension), e.g. `jax.ShapeDtypeStruct((6, 6, 256),
      jnp.float32)`.
    value_dtype: dtype of the values and prior logits.
    embedding_dtype: as in `search` (the stored dtype of floating leaves).
    extra_data: pytree of `[B, ...]` arrays or shape structs (Gumbel MuZero
      stores `[B, A]` noise).

  Returns:
    The total size in bytes of the tree's arrays (the search's working
    memory is this plus O(B x A) for one simulation).
  """
  def batched(x):
    return jax.ShapeDtypeStruct((batch_size,) + tuple(x.shape), x.dtype)

  root = base.RootFnOutput(
      prior_logits=jax.ShapeDtypeStruct((batch_size, num_actions),
                                        value_dtype),
      value=jax.ShapeDtypeStruct((batch_size,), value_dtype),
      embedding=jax.tree.map(batched, embedding))
  invalid = jax.ShapeDtypeStruct((batch_size, num_actions), value_dtype)
  shapes = jax.eval_shape(
      lambda root, invalid, extra: init_tree(root, num_simulations, invalid,
                                             extra, embedding_dtype),
      root, invalid, extra_data)
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
             for x in jax.tree.leaves(shapes))
