"""Gumbel MuZero's search with chance nodes: Stochastic MuZero's tree
(Antonoglou et al. 2022) searched with Gumbel MuZero's rules (Danihelka
et al. 2022), as asked in mctx's tracker (#66).

The tree is `mcts.stochastic`'s: decision nodes (states, the root among
them) and chance nodes (afterstates) alternate, in a tree `K = max(A, C)`
children wide. The rules:

* root (a decision node): Gumbel-Top-k and sequential halving over its
  `A` actions (`rules.GumbelRoot`): k actions sampled without replacement
  by g(a) + logits(a), then the halving schedule of `seq_halving`;
* other decision nodes: the deterministic selection towards the improved
  policy, argmax_a pi'(a) - N(a) / (1 + sum_b N(b)) with pi' =
  softmax(logits + sigma(completed q)) (`rules.GumbelInterior`);
* chance nodes: the outcome with the largest P(c) / (1 + N(c)), as in
  `stochastic_muzero_policy` (`stochastic.chance_outcome_selection`).

Both Gumbel rules see a decision node's first `A` children only
(`decision_view`): the `K - A` padding children that the wide
tree gives a decision node when `C > A` never enter the completed
Q-values' range, so that at every decision node the rule is Gumbel
MuZero's over the `A` actions. The action and the policy target are Gumbel
MuZero's (`policies.gumbel_act`).
"""
from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp

from mcts import base
from mcts import checks
from mcts import policies
from mcts import qtransforms
from mcts import rules
from mcts import stochastic
from mcts.base import ChanceRecurrentFn
from mcts.base import DecisionRecurrentFn
from mcts.tree import Tree


def gumbel_stochastic_muzero_policy(
    params: base.Params,
    rng_key: chex.PRNGKey,
    root: base.RootFnOutput,
    decision_recurrent_fn: DecisionRecurrentFn,
    chance_recurrent_fn: ChanceRecurrentFn,
    num_simulations: int,
    invalid_actions: Optional[chex.Array] = None,
    max_depth: Optional[int] = None,
    loop_fn: base.LoopFn = base.DEFAULT_LOOP_FN,
    *,
    qtransform=qtransforms.qtransform_completed_by_mix_value,
    max_num_considered_actions: int = 16,
    gumbel_scale: chex.Numeric = 1.0,
    embedding_dtype=None,
    skip_unused_model: bool = True,
    check_finite: bool = False) -> base.PolicyOutput:
  """Gumbel MuZero's policy over Stochastic MuZero's tree: sequential
  halving over Gumbel-Top-k root actions, deterministic selection at the
  other decision nodes, outcomes by their probabilities at chance nodes.

  Args:
    params, rng_key, root, decision_recurrent_fn, chance_recurrent_fn,
      num_simulations, invalid_actions `[B, A]`, max_depth, loop_fn: as in
      `stochastic_muzero_policy` (a simulation adds one node, a decision or
      a chance node, so the root's `A` actions share `num_simulations`
      visits, counted at their chance nodes).
    qtransform: completes and scales the Q-values at decision nodes.
    max_num_considered_actions: k, the root actions sampled without
      replacement.
    gumbel_scale: scale of the Gumbel noise; 0 makes the search
      deterministic (and a Python 0 draws no noise).
    embedding_dtype, skip_unused_model, check_finite: as in
      `stochastic_muzero_policy`.

  Returns:
    PolicyOutput: action `[B]`, the best action surviving the halving;
    action_weights `[B, A]`, the improved policy softmax(logits +
    sigma(completed q)); search_tree, the tree restricted to the first `A`
    children of each node, as `stochastic_muzero_policy`'s.
  """
  checks.check_search_args(root, num_simulations, max_depth, invalid_actions)
  checks.check_int_at_least("max_num_considered_actions",
                            max_num_considered_actions, 1)
  num_actions = root.prior_logits.shape[-1]
  root = root.replace(prior_logits=policies.mask_invalid_actions(
      root.prior_logits, invalid_actions))
  # Split as gumbel_muzero_policy does: the same key gives the same noise.
  rng_key, gumbel_key = jax.random.split(rng_key)
  gumbel = policies.draw_gumbel(gumbel_key, root.prior_logits, gumbel_scale)
  described = qtransforms.described(qtransform)
  tree = stochastic.stochastic_search(
      params, rng_key, root, decision_recurrent_fn, chance_recurrent_fn,
      root_action_selection_fn=GumbelDecisionRoot(
          rules.GumbelRoot(
              num_simulations=num_simulations,
              max_num_considered_actions=max_num_considered_actions,
              qtransform=described),
          num_actions=num_actions),
      interior_action_selection_fn=GumbelDecisionOrChance(
          rules.GumbelInterior(qtransform=described),
          num_actions=num_actions),
      num_simulations=num_simulations, invalid_actions=invalid_actions,
      max_depth=max_depth, loop_fn=loop_fn,
      extra_data=policies.gumbel_extra_data(
          gumbel, root.prior_logits, invalid_actions,
          max_num_considered_actions=max_num_considered_actions,
          qtransform=described),
      embedding_dtype=embedding_dtype, skip_unused_model=skip_unused_model,
      check_finite=check_finite)
  action, action_weights = policies.gumbel_act(
      tree, root.prior_logits, gumbel, invalid_actions, qtransform)
  return base.PolicyOutput(action=action, action_weights=action_weights,
                           search_tree=tree)


class GumbelDecisionRoot(NamedTuple):
  """The root rule of the wide tree: `root` (a `rules.GumbelRoot`) on the
  root's `decision_view`.

  Attributes:
    root: `(rng_key, tree, node_index) -> action`, for a tree of `A`
      children.
    num_actions: A.
  """
  root: rules.GumbelRoot
  num_actions: int

  def __call__(self, rng_key: chex.PRNGKey, tree: Tree,
               node_index: chex.Numeric) -> chex.Array:
    return self.root(rng_key, *decision_view(self.root, tree, node_index,
                                             self.num_actions))


class GumbelDecisionOrChance(NamedTuple):
  """The interior rule of the wide tree: `decision` (a
  `rules.GumbelInterior`) on a decision node's `decision_view`,
  `stochastic.chance_outcome_selection` at a chance node.

  Attributes:
    decision: `(rng_key, tree, node_index, depth) -> action`, for a tree of
      `A` children.
    num_actions: A.
  """
  decision: rules.GumbelInterior
  num_actions: int

  def __call__(self, rng_key: chex.PRNGKey, tree: Tree,
               node_index: chex.Numeric,
               depth: chex.Numeric) -> chex.Array:
    decision = self.decision(
        rng_key, *decision_view(self.decision, tree, node_index,
                                self.num_actions), depth)
    chance = stochastic.chance_outcome_selection(tree, node_index)
    return jnp.where(tree.embeddings.is_decision_node[node_index], decision,
                     chance)


def decision_view(rule, tree: Tree, node_index: chex.Numeric,
                  num_actions: int):
  """What a Gumbel `rule` reads to select at node `node_index` of ONE wide
  tree, restricted to the first `num_actions` children: (tree, node index).

  A rule that reads only the node it selects at (`rules.reads_one_node`:
  the library's Q-transforms) gets a one-node tree (node 0 holding the
  node's rows, the node's row sliced before its columns, so a selection
  reads O(A) numbers, not the tree); any other (a user's Q-transform may
  read the children's nodes) gets the whole tree's first `num_actions`
  children (`stochastic.first_children`) and the node's index. Both keep
  the root's first `num_actions` invalid actions and the `extra_data`.
  """
  if not rules.reads_one_node(rule):
    return stochastic.first_children(tree, num_actions), node_index
  view = tree.replace(
      **{f: jax.lax.dynamic_index_in_dim(getattr(tree, f), node_index)
         for f in Tree.NODE_FIELDS},
      **{f: getattr(tree, f)[node_index, :num_actions][None]
         for f in Tree.EDGE_FIELDS},
      root_invalid_actions=tree.root_invalid_actions[:num_actions])
  return view, Tree.ROOT_INDEX
