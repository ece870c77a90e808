"""Action selection rules for ONE tree; `search` maps them over the batch.

Signatures: root rules `(rng_key, tree, node_index) -> action`, interior
rules `(rng_key, tree, node_index, depth) -> action`, action an int32 `[]`.
"""
from typing import Any, Optional

import chex
import jax
import jax.numpy as jnp

from mcts import hashing
from mcts import qtransforms
from mcts import reductions
from mcts import seq_halving
from mcts.tree import Tree


@chex.dataclass(frozen=True)
class GumbelMuZeroExtraData:
  """Extra data for Gumbel MuZero search.

  Attributes:
    root_gumbel: `[B, A]` Gumbel noise of the root's actions.
    root_prior_visits: optional `[B, A]`, the root's children visits a kept
      tree already had; sequential halving schedules the new visits only.
    root_considered: optional `[B, k + 1]` int32, from
      `considered_root_actions`: the root selection then scores these
      `k + 1` actions instead of all `A`.
  """
  root_gumbel: chex.Array
  root_prior_visits: Optional[chex.Array] = None
  root_considered: Optional[chex.Array] = None


def masked_argmax(to_argmax: chex.Array, invalid_actions: Any) -> chex.Array:
  """argmax over the actions that are not invalid (`invalid_actions` may be
  None), the first of tied maxima (the first NaN if the row has one, as
  `jnp.argmax`); int32."""
  if invalid_actions is not None:
    to_argmax = jnp.where(invalid_actions, -jnp.inf, to_argmax)
  num_actions = to_argmax.shape[-1]
  if reductions.reduce_in_one_pass(to_argmax):
    return jnp.argmax(to_argmax, axis=-1).astype(jnp.int32)
  best = reductions.row_max(to_argmax)[..., None]
  index = jnp.arange(num_actions, dtype=jnp.int32)
  # A row with a NaN has a NaN maximum, equal to nothing: its first NaN
  # wins, as in jnp.argmax.
  at_best = (to_argmax == best) | jnp.isnan(to_argmax)
  return reductions.row_min(jnp.where(at_best, index, num_actions))


def muzero_action_selection(
    rng_key: chex.PRNGKey, tree: Tree, node_index: chex.Numeric,
    depth: chex.Numeric, *, pb_c_init: float = 1.25,
    pb_c_base: float = 19652.0,
    qtransform=qtransforms.qtransform_by_parent_and_siblings) -> chex.Array:
  """pUCT (MuZero paper, Schrittwieser et al. 2020, eq. 2):

    argmax_a  Q'(s, a) + P(s, a) * sqrt(N(s)) / (1 + N(s, a))
                        * (c1 + log((N(s) + c2 + 1) / c2))

  with Q' the transformed Q-values, c1 = pb_c_init, c2 = pb_c_base, and
  1e-7 * pseudo-random noise to break ties. Invalid actions (at the root,
  and where the model marked them) are excluded.
  """
  visit_counts = tree.children_visits_at(node_index)
  node_visit = tree.node_visits[node_index]
  pb_c = pb_c_init + jnp.log((node_visit + pb_c_base + 1.0) / pb_c_base)
  prior_probs = jnp.exp(tree.children_prior_logits_at(node_index))
  policy_score = jnp.sqrt(node_visit) * pb_c * prior_probs / (
      visit_counts + 1)
  value_score = qtransform(tree, node_index)
  tie_break = 1e-7 * hashing.uniform_from_key(rng_key, tree.num_actions)
  return masked_argmax(value_score + policy_score + tie_break,
                       tree.invalid_actions_at(node_index, depth))


def gumbel_muzero_root_action_selection(
    rng_key: chex.PRNGKey, tree: Tree, node_index: chex.Numeric, *,
    num_simulations: int, max_num_considered_actions: int,
    qtransform=qtransforms.qtransform_completed_by_mix_value) -> chex.Array:
  """Gumbel-Top-k with sequential halving at the root (Gumbel MuZero paper,
  Danihelka et al. 2022, section 3): the next simulation visits, among the
  actions with the visit count the halving schedule asks for, the one with
  the largest g(a) + logits(a) + sigma(completed q(a))."""
  del rng_key
  considered = getattr(tree.extra_data, "root_considered", None)
  if considered is not None:
    view = considered_root_view(tree, considered)
    return considered[gumbel_muzero_root_action_selection(
        None, view, Tree.ROOT_INDEX, num_simulations=num_simulations,
        max_num_considered_actions=max_num_considered_actions,
        qtransform=qtransform)]
  visit_counts = new_root_visits(tree, tree.children_visits_at(node_index))
  prior_logits = tree.children_prior_logits_at(node_index)  # log-probs <= 0
  completed_qvalues = qtransform(tree, node_index)
  table = jnp.array(seq_halving.considered_visits_table(
      max_num_considered_actions, num_simulations), jnp.int32)
  num_valid = jnp.sum(1 - tree.root_invalid_actions, axis=-1).astype(
      jnp.int32)
  num_considered = jnp.minimum(max_num_considered_actions, num_valid)
  # The simulation index is the sum of the children's (new) visits.
  simulation_index = jnp.sum(visit_counts, axis=-1)
  considered_visit = table[num_considered, simulation_index]
  to_argmax = seq_halving.score_considered(
      considered_visit, tree.extra_data.root_gumbel, prior_logits,
      completed_qvalues, visit_counts)
  return masked_argmax(to_argmax, tree.root_invalid_actions)


def considered_root_actions(gumbel: chex.Array, root_logits: chex.Array,
                            invalid_actions: Optional[chex.Array],
                            max_num_considered_actions: int
                            ) -> Optional[chex.Array]:
  """The root actions `[B, k + 1]` (int32) a Gumbel search can visit, with
  k = min(max_num_considered_actions, A), or None when k = A.

  Sequential halving first visits the k valid actions with the largest
  g(a) + logits(a) (its scores add the same sigma(v_mix) to every unvisited
  action), and later only actions it has visited. These k actions, in
  increasing order (so that ties resolve as over all actions), come first;
  the last is another action, which the selection never picks but which
  stands for the unvisited actions in the completed Q-values' range. Valid
  with a Q-transform that treats all unvisited children alike (the
  library's) and a search that starts from an empty tree.

  Args:
    gumbel: `[B, A]` the root's Gumbel noise.
    root_logits: `[B, A]` the root's prior as the tree stores it
      (`tree.log_prior`).
    invalid_actions: `[B, A]` or None.
    max_num_considered_actions: m.
  """
  num_actions = root_logits.shape[-1]
  k = min(max_num_considered_actions, num_actions)
  if k == num_actions:
    return None
  score = jnp.maximum(-1e9, gumbel + root_logits)
  if invalid_actions is not None:
    score = jnp.where(invalid_actions != 0, -jnp.inf, score)
  _, top = jax.lax.top_k(score, k)
  top = jnp.sort(top, axis=-1)
  is_top = jnp.zeros(root_logits.shape, bool).at[
      jnp.arange(top.shape[0])[:, None], top].set(True)
  other = jnp.argmin(is_top, axis=-1)
  return jnp.concatenate([top, other[:, None]], axis=-1).astype(jnp.int32)


def considered_root_view(tree: Tree, actions: chex.Array) -> Tree:
  """ONE tree's root as a one-node tree whose children are `actions` `[k +
  1]` (from `considered_root_actions`), the last marked invalid.

  The root's rows are sliced before the actions are gathered: XLA's CPU
  cost model then sees a read of one row, not of the whole `[N, A]` array,
  and does not split these gathers of k + 1 numbers over threads (which
  made B=1, A=362, 800 simulations 1.5x slower on 2 cores)."""
  root = Tree.ROOT_INDEX
  return tree.replace(
      **{f: getattr(tree, f)[root:root + 1] for f in Tree.NODE_FIELDS},
      **{f: getattr(tree, f)[root][actions][None] for f in Tree.EDGE_FIELDS},
      root_invalid_actions=tree.root_invalid_actions[actions].at[-1].set(True),
      extra_data=tree.extra_data.replace(
          root_gumbel=tree.extra_data.root_gumbel[actions],
          root_considered=None))


def new_root_visits(tree: Tree, visit_counts: chex.Array) -> chex.Array:
  """The root children's visits minus those a kept tree started with."""
  prior_visits = getattr(tree.extra_data, "root_prior_visits", None)
  if prior_visits is None:
    return visit_counts
  return visit_counts - prior_visits


def gumbel_muzero_interior_action_selection(
    rng_key: chex.PRNGKey, tree: Tree, node_index: chex.Numeric,
    depth: chex.Numeric, *,
    qtransform=qtransforms.qtransform_completed_by_mix_value) -> chex.Array:
  """Deterministic selection towards the improved policy (Gumbel MuZero
  paper, eq. 14): argmax_a pi'(a) - N(a) / (1 + sum_b N(b)), with
  pi' = softmax(logits + sigma(completed q))."""
  del rng_key, depth
  visit_counts = tree.children_visits_at(node_index)
  prior_logits = tree.children_prior_logits_at(node_index)
  completed_qvalues = qtransform(tree, node_index)
  improved_policy = softmax(prior_logits + completed_qvalues)
  # 1 + sum_b N(b) is the node's own count: a node is selected from only
  # below max_depth, where each of its visits but the first went on to a
  # child.
  to_argmax = improved_policy - visit_counts / tree.node_visits[node_index]
  # Invalid actions have pi' = 0, and so has any action too unlikely to
  # matter: with N(a) = 0 its score is 0, below the maximum, which is
  # positive since the scores sum to 1 / (1 + sum_b N(b)).
  return masked_argmax(to_argmax, improved_policy <= 0)


def softmax(logits: chex.Array) -> chex.Array:
  """`jax.nn.softmax` over the last axis of a selection rule's row `[A]`,
  with its maximum and sum as one online reduction (Milakov & Gimelshein
  2018) where `reductions.reduce_in_one_pass` says so."""
  if not reductions.reduce_in_one_pass(logits):
    exp = jnp.exp(logits - reductions.row_max(logits)[..., None])
    return exp / reductions.row_sum(exp)[..., None]

  def merge(a, b):
    (max_a, sum_a), (max_b, sum_b) = a, b
    top = jnp.maximum(max_a, max_b)
    return top, sum_a * jnp.exp(max_a - top) + sum_b * jnp.exp(max_b - top)

  init = (jnp.asarray(jnp.finfo(logits.dtype).min, logits.dtype),
          jnp.asarray(0, logits.dtype))
  top, total = jax.lax.reduce((logits, jnp.ones_like(logits)), init, merge,
                              (logits.ndim - 1,))
  return jnp.exp(logits - top[..., None]) / total[..., None]
