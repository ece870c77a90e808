"""One simulation's walk, root to leaf edge, as ONE Pallas kernel.

`walk` runs the library's own selection rules, as `mcts.rules` describes
them (`Puct`: pUCT of `muzero_policy`; `GumbelRoot`: Gumbel MuZero's root
and interior rules, with their numbers) in a
`pl.pallas_call` with one program per tree. The program loops over the
tree's levels with a data-dependent `lax.while_loop` inside the kernel,
reads each visited node's rows of the tree arrays by dynamic index,
computes the selection score and its argmax there, and writes the leaf's
parent and action. On a GPU a walk is then one launch and no host round
trip, whatever the depth (the generic walk is a `while_loop` of XLA
kernels whose condition goes to the host every iteration).

It chooses what the generic walk (`generic_walk`) chooses with
`action_selection`'s rules: the same formulas (`kernel_rules`, on one
node's rows), the same hashed tie-breaking noise (`hashing.derive_words` /
`uniform_from_words`, salted by depth and tree),
the first of tied maxima, invalid actions at the root and inside the tree,
`max_depth`. Only the order of a few floating-point sums may differ.

Triton constraints, respected here: every block and every value in the
kernel has power-of-two dimensions (the node and action dimensions of the
blocks are rounded up; entries past the arrays' ends are masked by
`where` as soon as they are read, whatever they hold); no slicing or
gather of values (rows are read from refs by `pl.ds`); reductions are
plain max / min / sum over the last axis; loops are `lax.while_loop`.
"""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

from mcts import rules
from mcts import seq_halving
from mcts.lowering import kernel_rules
from mcts.tree import Tree


def next_power_of_2(n: int) -> int:
  return 1 << max(0, math.ceil(math.log2(n)))


def walk(rule, rng_key: chex.PRNGKey, tree: Tree, max_depth: int, *,
         interpret: bool = False, compiler_params=None):
  """The leaf edge of every tree, chosen by `rule` in one kernel launch.

  Args:
    rule: a `rules.Puct` or `rules.GumbelRoot` (from `walks.kernel_rule`).
    rng_key: the simulation's key (typed or raw), as `generic_walk.walk`'s.
    tree: the batched tree `[B, N, ...]` (float32 values).
    max_depth: a Python int, as in `generic_walk.walk`.
    interpret: run the kernel in Pallas' interpreter (any platform).
    compiler_params: Pallas compiler parameters (e.g. Triton's).

  Returns:
    parent `[B]`, action `[B]`, path `[B, L + 1]` and depth `[B]`, int32,
    as `generic_walk.walk`'s: L = min(max_depth, N - 1), path[b, d] the node
    the walk went through at depth d < depth[b] (root first).
  """
  batch_size, num_nodes, num_actions = tree.children_index.shape
  path_length = min(max_depth, num_nodes - 1) + 1
  nodes, actions = next_power_of_2(num_nodes), next_power_of_2(num_actions)
  inputs = dict(
      children_index=tree.children_index,
      children_prior_logits=tree.children_prior_logits,
      children_visits=tree.children_visits,
      children_qvalues=tree.children_qvalues,
      node_visits=tree.node_visits,
      node_values=tree.node_values,
      raw_values=tree.raw_values,
      root_invalid=(tree.root_invalid_actions != 0).astype(jnp.int32))
  if isinstance(rule, rules.GumbelRoot):
    inputs.update(_gumbel_inputs(rule, tree))
  else:  # The key's words, for the tie-breaking noise.
    inputs["key_data"] = jax.random.key_data(rng_key).astype(
        jnp.uint32).reshape(-1)
  names = tuple(inputs)

  def spec(name):
    """Whole for the key and the table; else tree `b`'s block, its node
    and action dimensions rounded up to powers of two."""
    x = inputs[name]
    if name in ("key_data", "halving_table"):
      return pl.BlockSpec(x.shape, lambda b: (0,) * x.ndim)
    block = {3: (1, nodes, actions), 2: (1, nodes)}[x.ndim]
    if name.startswith("root_"):
      block = (1, actions)
    return pl.BlockSpec(block, lambda b: (b,) + (0,) * (x.ndim - 1))

  # The path's block, a power of two wide; entries past `path_length` stay
  # unwritten (the walk never gets that deep).
  path_width = next_power_of_2(path_length)

  def kernel(*refs):
    ins = dict(zip(names, refs[:len(names)]))
    parent_ref, action_ref, depth_ref, path_ref = refs[len(names):]
    path_ref[...] = jnp.full(path_ref.shape, Tree.ROOT_INDEX, jnp.int32)
    parent, action, depth = _walk_one_tree(rule, ins, path_ref, batch_size,
                                           num_actions, actions, max_depth)
    parent_ref[0] = parent
    action_ref[0] = action
    depth_ref[0] = depth

  out = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
  out_spec = pl.BlockSpec((1,), lambda b: (b,))
  path_out = jax.ShapeDtypeStruct((batch_size, path_width), jnp.int32)
  path_spec = pl.BlockSpec((1, path_width), lambda b: (b, 0))
  parent, action, depth, path = pl.pallas_call(
      kernel, grid=(batch_size,), in_specs=[spec(n) for n in names],
      out_specs=(out_spec, out_spec, out_spec, path_spec),
      out_shape=(out, out, out, path_out),
      interpret=interpret, compiler_params=compiler_params,
      name="mcts_walk")(*inputs.values())
  return parent, action, path[:, :path_length], depth


def _gumbel_inputs(rule: rules.GumbelRoot, tree: Tree):
  """The root's extra rows `[B, A]` a Gumbel walk reads, and sequential
  halving's table `[R, S]` (rounded up to powers of two)."""
  extra = tree.extra_data
  shape = tree.root_invalid_actions.shape
  prior_visits = getattr(extra, "root_prior_visits", None)
  if prior_visits is None:
    prior_visits = jnp.zeros(shape, jnp.int32)
  # `root_considered` needs no input: scoring all actions chooses as
  # scoring the considered ones (`considered_root_actions`): sequential
  # halving first visits the k best by g + logits, then visited ones only.
  table = np.asarray(seq_halving.considered_visits_table(
      rule.max_num_considered_actions, rule.num_simulations), np.int32)
  padded = np.zeros([next_power_of_2(n) for n in table.shape], np.int32)
  padded[:table.shape[0], :table.shape[1]] = table
  return dict(root_gumbel=extra.root_gumbel.astype(jnp.float32),
              root_prior_visits=prior_visits.astype(jnp.int32),
              halving_table=jnp.asarray(padded))


def _walk_one_tree(rule, ins, path_ref, batch_size, num_actions, width,
                   max_depth):
  """The kernel body for tree `pl.program_id(0)`: returns its leaf edge
  (parent, action) and the leaf's depth, int32 scalars, and writes the
  nodes below the root that the walk goes through into `path_ref`
  `[1, W]` (the node at depth d at index d)."""
  tree_id = pl.program_id(0)
  index = jax.lax.broadcasted_iota(jnp.int32, (1, width), 1)
  real = index < num_actions  # Entries past A hold anything.

  def row(name, node, fill):
    """The node's row `[1, width]` of an edge array, `fill` past A."""
    return jnp.where(real, ins[name][0, pl.ds(node, 1), :], fill)

  def root_row(name, fill):
    return jnp.where(real, ins[name][0:1, :], fill)

  def at(name, node):
    """A node array's entry at `node`: `[1]`."""
    return ins[name][0, pl.ds(node, 1)]

  def rows(node):
    return dict(
        children=row("children_index", node, Tree.INVALID),
        logits=row("children_prior_logits", node,
                   jnp.finfo(jnp.float32).min),
        visits=row("children_visits", node, 0),
        qvalues=row("children_qvalues", node, 0.0))

  if isinstance(rule, rules.Puct):
    def select(node, depth, salt):
      r = rows(node)
      invalid = r["children"] == Tree.INVALID
      if depth == 0:
        invalid = invalid | (root_row("root_invalid", 1) != 0)
      noise = kernel_rules.tie_break_noise(ins["key_data"], salt, width)
      return kernel_rules.puct_choice(
          rule, r, at("node_visits", node), at("node_values", node), noise,
          invalid, real, num_actions)
  else:
    def select(node, depth, salt):
      del salt
      r = rows(node)
      if depth == 0:
        return kernel_rules.gumbel_root_choice(
            rule, r, at("raw_values", node), ins, root_row, real,
            num_actions)
      return kernel_rules.gumbel_interior_choice(
          rule, r, at("raw_values", node), at("node_visits", node), real,
          num_actions)

  def child_of(r_children, action):
    return jnp.sum(jnp.where(index == action, r_children, 0))

  root = Tree.ROOT_INDEX  # A Python int: the root's reads are static.
  action = select(root, 0, tree_id)
  next_node = child_of(row("children_index", root, Tree.INVALID), action)
  depth = jnp.int32(1)
  state = (jnp.int32(root), action, next_node, depth,
           _continues(next_node, depth, max_depth))

  def go_on(state):
    return state[-1] != 0

  def level(state):
    _, _, node, depth, _ = state
    path_ref[0, pl.ds(depth, 1)] = jnp.full((1,), node, jnp.int32)
    action = select(node, 1, depth * batch_size + tree_id)
    next_node = child_of(row("children_index", node, Tree.INVALID), action)
    depth = depth + 1
    return (node, action, next_node, depth,
            _continues(next_node, depth, max_depth))

  node, action, _, depth, _ = jax.lax.while_loop(go_on, level, state)
  return node, action, depth


def _continues(next_node, depth, max_depth):
  return ((next_node >= 0) & (depth < max_depth)).astype(jnp.int32)
