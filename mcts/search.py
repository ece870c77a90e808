"""search(): the batched simulate -> expand -> backward loop.

Each of the `num_simulations` iterations of the outer loop
  1. simulates: walks every tree of the batch from its root to a leaf edge
     with the action selection rules (a `while_loop` whose carry is a few
     `[B]` vectors; the tree is read, never copied);
  2. expands: calls `recurrent_fn` once on the whole batch and writes the new
     nodes (one scatter per array);
  3. backs up: walks from the new leaves to the roots, updating the visit
     counts and mean values of the nodes on the path (a `while_loop` that
     scatters `[B]` entries per level, or `[B, 8]` per 8 levels).
The work per simulation is O(depth x A) per tree, independent of the tree's
size, unlike carrying the whole tree through a vmapped loop.
"""
import os
from typing import Any, Optional

import chex
import jax
import jax.numpy as jnp

from mcts import accelerated
from mcts import base
from mcts import checks
from mcts import hashing
from mcts import reductions
from mcts.tree import Tree, init_tree, log_prior, with_new_root


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
    capacity: Optional[int] = None) -> Tree:
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

  Returns:
    The searched `Tree`, with `capacity` nodes per root.
  """
  checks.check_search_args(root, num_simulations, max_depth, invalid_actions)
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
    # The walk: generic, or one kernel where `accelerated` says so.
    parent, action = accelerated.simulate(
        keys[sim, 0], tree, root_action_selection_fn,
        interior_action_selection_fn, max_depth, generic=simulate)
    child = tree.children_index[batch_range, parent, action]
    leaf = jnp.where(child < 0, first_free + sim, child).astype(jnp.int32)
    has_room = None
    if can_fill_up:  # A full tree's simulation changes nothing.
      has_room = leaf < capacity
      leaf = jnp.minimum(leaf, capacity - 1)
    tree = expand(params, keys[sim, 1], tree, recurrent_fn, parent, action,
                  leaf, embedding_dtypes, has_room)
    if can_fill_up:
      leaf = jnp.where(has_room, leaf, Tree.ROOT_INDEX)
    return backward(tree, leaf)

  return loop_fn(0, num_simulations, one_simulation, tree)


# Tree levels per `while_loop` iteration of the walk and the backup, by
# platform (keys as in `jax.lax.platform_dependent`). On a GPU each
# iteration costs about 20 us (its condition goes to the host), more than a
# level's work: 4 levels per iteration made searches 6-47% faster on an
# H100 (`benchmarks/loop_levels.py`; 8 was slower for Gumbel). On the CPU 1
# keeps a loop small enough at batch 1 for XLA to compile it as one
# function, and more levels measured no faster.
LEVELS_PER_ITERATION = dict(cpu=1, default=4)


def while_levels(cond_fn, level_fn, state):
  """`lax.while_loop(cond_fn, level_fn, state)` for a `level_fn` that leaves
  finished trees unchanged, taking `LEVELS_PER_ITERATION` levels per
  iteration for the platform it is lowered for."""
  return jax.lax.platform_dependent(
      state, **{platform: levels_loop(cond_fn, level_fn, levels)
                for platform, levels in LEVELS_PER_ITERATION.items()})


def levels_loop(cond_fn, level_fn, levels: int):
  """`state -> lax.while_loop(cond_fn, body, state)` whose body applies
  `level_fn` `levels` times."""
  def body(state):
    for _ in range(levels):
      state = level_fn(state)
    return state
  return lambda state: jax.lax.while_loop(cond_fn, body, state)


@chex.dataclass(frozen=True)
class _Walk:
  """The small carry of `simulate`'s loop; every field is `[B]`."""
  node: chex.Array       # The node whose action was just selected.
  action: chex.Array     # The action selected at `node`.
  next_node: chex.Array  # children_index[node, action], < 0 if none.
  depth: chex.Array      # Depth of `next_node`.
  continuing: chex.Array


def simulate(rng_key: chex.PRNGKey, tree: Tree, root_action_selection_fn,
             interior_action_selection_fn, max_depth: int):
  """Walks each tree from its root to the edge where it will expand.

  The walk stops at the first action whose child is not expanded yet, or
  when the next node would be at depth `max_depth`. The selection rules get
  a distinct key per tree and depth, derived from `rng_key`. When both are
  marked by `action_selection.reads_one_node` and `avoid_cpu_splits` holds,
  they get, on the CPU, a one-node view of the tree: node 0 holding the
  rows of the node they select at, read by `node_rows`.

  Returns:
    parent `[B]` int32 and action `[B]` int32: the leaf edge of every tree.
  """
  batch_size = tree.node_visits.shape[0]
  batch_range = jnp.arange(batch_size)
  one_node = avoid_cpu_splits(tree) and all(
      getattr(fn, "reads_one_node", False)
      for fn in (root_action_selection_fn, interior_action_selection_fn))
  roots = jnp.full((batch_size,), Tree.ROOT_INDEX, jnp.int32)

  def select(selection_fn, view, node, depth=None):
    """Applies a one-tree selection rule to every tree of the batch."""
    salt = batch_range if depth is None else depth * batch_size + batch_range
    keys = hashing.derive_keys(rng_key, salt)
    args = (keys, view, node) if depth is None else (keys, view, node, depth)
    if batch_size == 1:  # One tree: no batch axis in its indexing at all.
      action = selection_fn(*jax.tree.map(lambda x: x[0], args))
      return jnp.asarray(action, jnp.int32)[None]
    return jnp.asarray(jax.vmap(selection_fn, axis_name=base.TREE_AXIS)(
        *args), jnp.int32)

  def view_at(node, rows):
    """The tree and node indices `[B]` the rules read for `node`: a one-node
    view of `rows` if any."""
    return (tree, node) if rows is None else (tree.replace(**rows), roots)

  def advance(view, at, action, depth):
    next_node = view.children_index[batch_range, at, action]
    continuing = (next_node >= 0) & (depth < max_depth)
    return next_node, continuing

  # The root's rows are static slices, which XLA does not split.
  view, at = view_at(roots, {f: getattr(tree, f)[:, :1]
                            for f in _VIEW_FIELDS} if one_node else None)
  action = select(root_action_selection_fn, view, at)
  depth = jnp.ones_like(roots)
  next_node, continuing = advance(view, at, action, depth)
  start = _Walk(node=roots, action=action, next_node=next_node, depth=depth,
                continuing=continuing)

  def step(walk, buffers):
    # A finished walk keeps its node, action and depth, so `advance` gives
    # it back its own next node and `continuing` (False) again.
    go = walk.continuing
    node = jnp.where(go, walk.next_node, walk.node)
    rows = None
    if buffers is not None:
      rows, buffers = node_rows(tree, node, buffers)
    view, at = view_at(node, rows)
    action = jnp.where(go, select(interior_action_selection_fn, view, at,
                                  walk.depth), walk.action)
    depth = walk.depth + go
    next_node, continuing = advance(view, at, action, depth)
    return _Walk(node=node, action=action, next_node=next_node, depth=depth,
                 continuing=continuing), buffers

  def walk_on(platform):
    """The walk's loop as lowered for `platform` (as `while_levels`, with
    buffers carried along: on the CPU the one-node views are read through
    them, see `node_rows`)."""
    loop = levels_loop(lambda state: reductions.row_any(state[0].continuing),
                       lambda state: step(*state),
                       LEVELS_PER_ITERATION[platform])

    def run(start):
      buffers = None
      if one_node and platform == "cpu":
        buffers = row_buffers(tree)
      return loop((start, buffers))[0]
    return run

  end = jax.lax.platform_dependent(
      start, **{platform: walk_on(platform)
                for platform in LEVELS_PER_ITERATION})
  return end.node, end.action


# The fields of a one-node view: the node's own rows of the `Tree` arrays.
_VIEW_FIELDS = Tree.NODE_FIELDS + Tree.EDGE_FIELDS


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
             for f in _VIEW_FIELDS}
  return {f: b[:-1] for f, b in buffers.items()}, buffers


def row_buffers(tree: Tree):
  """Buffers for `node_rows`, `[B + 1, 1, ...]`: the spare row keeps the
  update from covering the whole buffer, which XLA would turn into no
  write at all."""
  return {f: jnp.zeros((x.shape[0] + 1, 1) + x.shape[2:], x.dtype)
          for f in _VIEW_FIELDS for x in (getattr(tree, f),)}


# XLA's CPU compiler splits an operation over the cores when it estimates
# that it reads or writes this many bytes, and counts a gather as reading
# all of its array. On a few cores the hand-off costs more than a walk
# level's gathers (4.8 instead of 0.4 us per level at B=16, 16 actions, 800
# nodes: `benchmarks/cpu_split.py`).
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


def expand(params, rng_key, tree: Tree, recurrent_fn, parent, action,
           leaf, embedding_dtypes, has_room=None) -> Tree:
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
  """
  batch_size, num_actions = tree.root_invalid_actions.shape
  batch_range = jnp.arange(batch_size)
  embedding = jax.tree.map(lambda e, dtype: e[batch_range, parent].astype(
      dtype), tree.embeddings, embedding_dtypes)
  step, new_embedding = recurrent_fn(params, rng_key, action, embedding)
  checks.check_recurrent_output(step, new_embedding, embedding,
                                (batch_size, num_actions),
                                tree.node_values.dtype)
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


# Tree levels `backward_in_chunks` takes per `while_loop` iteration.
BACKUP_CHUNK = 8


def backward(tree: Tree, leaf: chex.Array) -> Tree:
  """Backs the leaves' values up to the roots (see `backward_by_level`).

  On the CPU, trees for which `avoid_cpu_splits` holds go up in
  chunks of levels (`backward_in_chunks`): each of a level's scatters into
  a large tree array would be split over threads, a chunk's are split once.
  """
  if avoid_cpu_splits(tree):
    return jax.lax.platform_dependent(tree, leaf, cpu=backward_in_chunks,
                                      default=backward_by_level)
  return backward_by_level(tree, leaf)


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
  _, _, _, visits, values, children_visits, qvalues = while_levels(
      not_at_root, one_level, state)
  return tree.replace(node_visits=visits, node_values=values,
                      children_visits=children_visits,
                      children_qvalues=qvalues)
