"""search(): the batched simulate -> expand -> backward loop.

Each of the `num_simulations` iterations of the outer loop
  1. simulates: walks every tree of the batch from its root to a leaf edge
     with the action selection rules (a `while_loop` whose carry is a few
     `[B]` vectors; the tree is read, never copied);
  2. expands: calls `recurrent_fn` once on the whole batch and writes the new
     nodes (one scatter per array);
  3. backs up: updates the visit counts and mean values of the nodes on the
     path, touching only those entries.
The work per simulation is O(depth x A) per tree, independent of the tree's
size, unlike carrying the whole tree through a vmapped loop.

How the walk and the backup are made fast on each platform (a kernel, a
loop of levels, ...) is `mcts.lowering`'s business; every lowering builds
the same trees.
"""
from typing import Any, Optional

import chex
import jax
import jax.numpy as jnp

from mcts import base
from mcts import checks
from mcts import hashing
from mcts.lowering import backup
from mcts.lowering import walks
from mcts.subtree import with_new_root
from mcts.tree import Tree, init_tree, log_prior


def search(
    params: base.Params,
    rng_key: chex.PRNGKey,
    *,
    root: base.RootFnOutput,
    recurrent_fn: base.RecurrentFn,
    root_action_selection_fn: base.RootActionSelectionFn,
    interior_action_selection_fn: base.InteriorActionSelectionFn,
    num_simulations: int,
    max_depth: Optional[int] = None,
    invalid_actions: Optional[chex.Array] = None,
    extra_data: Any = None,
    loop_fn: base.LoopFn = base.DEFAULT_LOOP_FN,
    embedding_dtype: Optional[Any] = None,
    tree: Optional[Tree] = None,
    capacity: Optional[int] = None,
    check_finite: bool = False) -> Tree:
  """Runs a batched Monte Carlo Tree Search.

  Args:
    params: any pytree, passed to `recurrent_fn`.
    rng_key: a PRNG key.
    root: prior_logits `[B, A]`, value `[B]`, embedding pytree `[B, ...]`.
    recurrent_fn: `(params, rng_key, action [B], embedding) ->
      (RecurrentFnOutput, embedding)`, called once per simulation.
    root_action_selection_fn: `(rng_key, tree, node_index) -> action` for
      one tree (the search maps it over the batch), used at depth 0.
    interior_action_selection_fn: `(rng_key, tree, node_index, depth) ->
      action` for one tree, used below the root.
    num_simulations: the number of simulations (a Python int >= 1).
    max_depth: the deepest a simulation goes (default: capacity - 1, which
      is `num_simulations` for a fresh tree); a leaf at this depth is
      evaluated again instead of expanded, its value becoming the mean of
      its evaluations.
    invalid_actions: `[B, A]`, 1 (or True) for actions invalid at the root.
    extra_data: a pytree of `[B, ...]` arrays stored in `tree.extra_data`.
    loop_fn: the loop over simulations, e.g. `jax.lax.fori_loop` or
      `hk.fori_loop`.
    embedding_dtype: store the floating-point leaves of the embeddings in
      this dtype (e.g. `jnp.bfloat16`, half the memory); `recurrent_fn` still
      gets them in their own dtype. None keeps them as they are.
    tree: a kept tree to continue (from `get_subtree`): its statistics stay
      and the new simulations add to them, in its arrays. The root's prior,
      raw value and embedding are replaced by `root`'s.
    capacity: the number of nodes per tree (default `num_simulations + 1`,
      or the kept tree's). Give more room to keep subtrees between moves: a
      simulation that finds its tree full changes nothing.
    check_finite: `checkify.check` that the root's and every simulation's
      model outputs are finite (`checks.check_finite_outputs`); run the
      search under `checkify.checkify(..., errors=checkify.user_checks)`.
      Off by default: then the program has no check at all.

  Returns:
    The searched `Tree`, with `capacity` nodes per root.
  """
  checks.check_search_args(root, num_simulations, max_depth, invalid_actions)
  if check_finite:
    checks.check_finite_outputs(root)
  batch_size, num_actions = root.prior_logits.shape
  if invalid_actions is None:
    invalid_actions = jnp.zeros_like(root.prior_logits)
  tree_given = tree is not None
  if tree is None:
    if capacity is None:
      capacity = num_simulations + 1
    checks.check_int_at_least("capacity", capacity, 2)
    tree = init_tree(root, capacity - 1, invalid_actions, extra_data,
                     embedding_dtype)
  else:
    checks.check_kept_tree(tree, root, capacity)
    tree = with_new_root(tree, root, invalid_actions, extra_data)
  capacity = tree.node_visits.shape[1]
  if max_depth is None:
    max_depth = capacity - 1
  embedding_dtypes = jax.tree.map(lambda e: e.dtype, root.embedding)
  batch_range = jnp.arange(batch_size)
  # All keys derived up front, by an integer mix (no threefry loop).
  keys = hashing.split(rng_key, 2 * num_simulations).reshape(
      (num_simulations, 2) + rng_key.shape)

  # A kept tree, or one given less room than simulations, can fill up.
  can_fill_up = tree_given or capacity < num_simulations + 1
  # Nodes are used in order: a new node goes to the first free slot.
  first_free = jnp.maximum(jnp.sum(tree.node_visits > 0, axis=1), 1)

  def one_simulation(sim, tree):
    parent, action, path, depth = simulate(
        keys[sim, 0], tree, root_action_selection_fn,
        interior_action_selection_fn, max_depth)
    child = tree.children_index[batch_range, parent, action]
    leaf = jnp.where(child < 0, first_free + sim, child).astype(jnp.int32)
    has_room = None
    if can_fill_up:  # A full tree's simulation changes nothing.
      has_room = leaf < capacity
      leaf = jnp.minimum(leaf, capacity - 1)
    tree = expand(params, keys[sim, 1], tree, recurrent_fn, parent, action,
                  leaf, embedding_dtypes, has_room,
                  simulation=sim if check_finite else None)
    if can_fill_up:
      leaf = jnp.where(has_room, leaf, Tree.ROOT_INDEX)
      depth = jnp.where(has_room, depth, 0)
    return backward(tree, leaf, path, depth)

  return loop_fn(0, num_simulations, one_simulation, tree)


def simulate(rng_key: chex.PRNGKey, tree: Tree, root_action_selection_fn,
             interior_action_selection_fn, max_depth: int):
  """Walks each tree from its root to the edge where it will expand.

  The walk stops at the first action whose child is not expanded yet, or
  when the next node would be at depth `max_depth`. The selection rules get
  a distinct key per tree and depth, derived from `rng_key`. The walk is
  the one `lowering.walks.walk` lowers for the platform.

  The walk reads the tree through `jax.lax.stop_gradient`: the choices
  are piecewise constant in the tree's values, and no loop or kernel of
  the walk then carries tangents (a `while_loop` with tangents cannot be
  reversed; the walk kernel has no derivative rule).

  Returns:
    parent `[B]` int32 and action `[B]` int32: the leaf edge of every tree;
    path `[B, L + 1]` int32, L = min(max_depth, N - 1): the nodes the walk
    went through, root first (path[b, d] for d < depth[b]; the rest
    unspecified, on the CPU all of it); depth `[B]` int32: the leaf's depth.
  """
  return walks.walk(rng_key, tree, root_action_selection_fn,
                    interior_action_selection_fn, max_depth)


def expand(params, rng_key, tree: Tree, recurrent_fn, parent, action,
           leaf, embedding_dtypes, has_room=None, simulation=None) -> Tree:
  """Evaluates the leaf edges with one batched `recurrent_fn` call.

  A new leaf gets the model's evaluation; a leaf that already exists (only
  at `max_depth`) is evaluated again and its value becomes the running mean
  of its evaluations.

  Args:
    parent, action, leaf: `[B]` int32; `leaf` is the index the child of
      `(parent, action)` has or will get.
    embedding_dtypes: pytree of the dtypes `recurrent_fn` works in (the
      tree may store embeddings in a smaller dtype).
    has_room: None, or bool `[B]`: False for full trees, which are then
      rewritten unchanged (every write stays in bounds, so that XLA updates
      the arrays in place).
    simulation: None, or the simulation's index `[]`: check the model's
      outputs (`checks.check_finite_outputs`).
  """
  batch_size, num_actions = tree.root_invalid_actions.shape
  batch_range = jnp.arange(batch_size)
  embedding = jax.tree.map(lambda e, dtype: e[batch_range, parent].astype(
      dtype), tree.embeddings, embedding_dtypes)
  step, new_embedding = recurrent_fn(params, rng_key, action, embedding)
  checks.check_recurrent_output(step, new_embedding, embedding,
                                (batch_size, num_actions),
                                tree.node_values.dtype)
  if simulation is not None:
    checks.check_finite_outputs(step, simulation)
  prior_logits, children_row = _mask_new_node(step.prior_logits,
                                              step.invalid_actions)

  def put(array, update, index=(leaf,)):
    update = update.astype(array.dtype)
    if has_room is not None:
      keep = has_room.reshape(has_room.shape + (1,) * (update.ndim - 1))
      update = jnp.where(keep, update, array[(batch_range,) + index])
    return array.at[(batch_range,) + index].set(update,
                                                mode="promise_in_bounds")

  # The count is read after the increment, as in `backward`: a read of the
  # old array besides the write made XLA copy the whole array.
  node_visits = put(tree.node_visits, tree.node_visits[batch_range, leaf] + 1)
  count = node_visits[batch_range, leaf]
  old_value = tree.node_values[batch_range, leaf]
  value = step.value.astype(old_value.dtype)
  mean_value = old_value + (value - old_value) / count
  children_index = put(tree.children_index, leaf, (parent, action))
  if children_row is not None:
    children_index = put(children_index, children_row)
  return tree.replace(
      node_visits=node_visits,
      raw_values=put(tree.raw_values, value),
      node_values=put(tree.node_values, mean_value),
      node_rewards=put(tree.node_rewards, step.reward),
      node_discounts=put(tree.node_discounts, step.discount),
      parents=put(tree.parents, parent),
      action_from_parent=put(tree.action_from_parent, action),
      children_prior_logits=put(tree.children_prior_logits, prior_logits),
      embeddings=jax.tree.map(put, tree.embeddings, new_embedding),
      children_index=children_index)


def _mask_new_node(prior_logits, invalid_actions):
  """Normalises a new node's logits and masks its illegal actions, unless
  all of them are illegal.

  Returns:
    the normalised prior logits `[B, A]` (illegal ones at the lowest float)
    and the node's children row `[B, A]` (INVALID where illegal, UNVISITED
    elsewhere), or None without a mask.
  """
  if invalid_actions is None:
    return log_prior(prior_logits), None
  invalid = invalid_actions != 0
  invalid = invalid & ~jnp.all(invalid, axis=-1, keepdims=True)
  return (log_prior(prior_logits, invalid),
          jnp.where(invalid, Tree.INVALID, Tree.UNVISITED))


def backward(tree: Tree, leaf: chex.Array, path: chex.Array,
             depth: chex.Array) -> Tree:
  """Backs the leaves' values up to the roots.

  For each edge (n_k, a_k) -> n_{k+1} of the path n_0 (root), ..., n_D
  (leaf), k < D:
    G_k = r(n_{k+1}) + discount(n_{k+1}) * G_{k+1},  G_D = V(leaf)
    V(n_k) <- (V(n_k) * N(n_k) + G_k) / (N(n_k) + 1)
    N(n_k) <- N(n_k) + 1,  N(n_k, a_k) <- N(n_k, a_k) + 1
    Q(n_k, a_k) <- r(n_{k+1}) + discount(n_{k+1}) * V(n_{k+1})
  with V(n_{k+1}) already updated, as `lowering.backup.backward` lowers it
  for the platform (with the derivatives of the loop-free backup along the
  path).

  Args:
    tree: the tree after `expand`.
    leaf: `[B]` int32 index of the just evaluated leaves.
    path: `[B, L + 1]` int32, the leaves' ancestors from the root
      (`path[b, d]` for `d < depth[b]`), as `simulate` gives it.
    depth: `[B]` int32 depth of the leaves, 0 for a simulation that
      changes nothing.
  """
  return backup.backward(tree, leaf, path, depth)
