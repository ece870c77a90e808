"""The generic walk: any selection rules, as a `while_loop` over the tree's
levels, lowered per platform.

Each level maps the selection rule over the batch (`jax.vmap`, one tree
each); the loop's carry is a few `[B]` vectors, the tree is read, never
copied. On the CPU the walk
  * takes one level per loop iteration and records no path (the CPU's
    backup finds it from the parents, `cpu_backup`);
  * for large batched trees (`cpu_splits.avoid_cpu_splits`) gives rules that
    read only the node they select at a one-node view of the tree, read
    through small in-place buffers that XLA does not split over threads.
Elsewhere it takes `platforms.LEVELS_PER_ITERATION` levels per iteration
and records the path. Every lowering chooses the same actions.
"""
import functools

import chex
import jax
import jax.numpy as jnp

from mcts import hashing
from mcts import reductions
from mcts.lowering import cpu_splits
from mcts.lowering import platforms
from mcts.tree import Tree


@chex.dataclass(frozen=True)
class _Walk:
  """The small carry of the walk's loop; every field but `path` is `[B]`."""
  node: chex.Array       # The node whose action was just selected.
  action: chex.Array     # The action selected at `node`.
  next_node: chex.Array  # children_index[node, action], < 0 if none.
  depth: chex.Array      # Depth of `next_node`.
  continuing: chex.Array
  path: chex.Array       # `[B, L + 1]`: the node at each depth < `depth`.


def walk(rng_key: chex.PRNGKey, tree: Tree, root_action_selection_fn,
         interior_action_selection_fn, max_depth: int, *, one_node: bool):
  """Walks each tree from its root to the edge where it will expand.

  The walk stops at the first action whose child is not expanded yet, or
  when the next node would be at depth `max_depth`. The selection rules get
  a distinct key per tree and depth, derived from `rng_key`.

  Args:
    rng_key: the simulation's key.
    tree: the batched tree `[B, N, ...]` (read only: no tangents).
    root_action_selection_fn: `(rng_key, tree, node_index) -> action` for
      one tree, used at depth 0.
    interior_action_selection_fn: `(rng_key, tree, node_index, depth) ->
      action` for one tree, used below the root.
    max_depth: a Python int.
    one_node: whether both rules read only the node they select at (its
      rows, the root's invalid actions and `extra_data`): on the CPU, for
      the trees `cpu_splits.avoid_cpu_splits` names, they then get a
      one-node view of the tree (node 0 holding the rows of the node they
      select at).

  Returns:
    parent `[B]` int32 and action `[B]` int32: the leaf edge of every tree;
    path `[B, L + 1]` int32, L = min(max_depth, N - 1): the nodes the walk
    went through, root first (path[b, d] for d < depth[b]; unspecified on
    the CPU); depth `[B]` int32: the leaf's depth.
  """
  batch_size, num_nodes = tree.node_visits.shape
  batch_range = jnp.arange(batch_size)
  one_node = one_node and cpu_splits.avoid_cpu_splits(tree)
  roots = jnp.full((batch_size,), Tree.ROOT_INDEX, jnp.int32)

  def select(selection_fn, view, node, depth=None):
    """Applies a one-tree selection rule to every tree of the batch."""
    salt = batch_range if depth is None else depth * batch_size + batch_range
    keys = hashing.derive_keys(rng_key, salt)
    args = (keys, view, node) if depth is None else (keys, view, node, depth)
    if batch_size == 1:  # One tree: no batch axis in its indexing at all.
      action = selection_fn(*jax.tree.map(lambda x: x[0], args))
      return jnp.asarray(action, jnp.int32)[None]
    return jnp.asarray(jax.vmap(selection_fn, axis_name=reductions.TREE_AXIS)(
        *args), jnp.int32)

  def view_at(node, buffers):
    """The tree and node indices `[B]` the rules read for `node`: a one-node
    view read through `buffers` if any."""
    if buffers is None:
      return tree, node, None
    view, buffers = cpu_splits.node_view(tree, node, buffers)
    return view, roots, buffers

  def advance(view, at, action, depth):
    next_node = view.children_index[batch_range, at, action]
    continuing = (next_node >= 0) & (depth < max_depth)
    return next_node, continuing

  # The root's rows are static slices, which XLA does not split.
  view = cpu_splits.root_view(tree) if one_node else tree
  action = select(root_action_selection_fn, view, roots)
  depth = jnp.ones_like(roots)
  next_node, continuing = advance(view, roots, action, depth)
  path = jnp.full((batch_size, min(max_depth, num_nodes - 1) + 1),
                  Tree.ROOT_INDEX, jnp.int32)
  start = _Walk(node=roots, action=action, next_node=next_node, depth=depth,
                continuing=continuing, path=path)

  def step(state, record):
    # A finished walk keeps its node, action and depth, so `advance` gives
    # it back its own next node and `continuing` (False) again.
    walk_state, buffers = state
    go = walk_state.continuing
    node = jnp.where(go, walk_state.next_node, walk_state.node)
    view, at, buffers = view_at(node, buffers)
    action = jnp.where(go, select(interior_action_selection_fn, view, at,
                                  walk_state.depth), walk_state.action)
    # `node` is at depth `walk_state.depth` (< L); a finished walk rewrites
    # its leaf's entry, which the backup does not read.
    path = walk_state.path
    if record:
      path = path.at[batch_range, walk_state.depth].set(
          node, mode="drop", unique_indices=True)
    depth = walk_state.depth + go
    next_node, continuing = advance(view, at, action, depth)
    return _Walk(node=node, action=action, next_node=next_node, depth=depth,
                 continuing=continuing, path=path), buffers

  def walk_on(platform):
    """The walk as lowered for `platform`: on the CPU the one-node views
    are read through buffers carried along (`cpu_splits.node_rows`), and
    the path is not recorded (the CPU's backup finds it by the parents)."""
    def run(start):
      buffers = None
      if one_node and platform == "cpu":
        buffers = cpu_splits.row_buffers(tree)
      return platforms.levels_loop(
          lambda state: reductions.row_any(state[0].continuing),
          functools.partial(step, record=platform != "cpu"),
          platforms.LEVELS_PER_ITERATION[platform])((start, buffers))[0]
    return run

  end = platforms.by_platform(
      start, **{platform: walk_on(platform)
                for platform in platforms.LEVELS_PER_ITERATION})
  return end.node, end.action, end.path, end.depth
