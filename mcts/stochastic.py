"""Stochastic MuZero (Antonoglou et al. 2022, "Planning in Stochastic
Environments with a Learned Model"), built on the generic `search`.

The search tree alternates two kinds of nodes:

* decision nodes (states `s`, the root among them): the agent picks an action
  `a` by pUCT, as in MuZero; the edge `s -> as` has reward 0 and discount 1;
* chance nodes (afterstates `as`): the environment picks an outcome `c`; the
  search visits the outcome maximising `P(c | as) / (1 + N(as, c))`, which
  keeps the visits proportional to the outcome probabilities without
  sampling; the edge `as -> s'` carries the environment's reward and
  discount.

How it maps onto `search`:

* The tree has `K = max(A, C)` children per node. Decision nodes use their
  first `A`, chance nodes their first `C`; the rest are marked invalid (the
  root's through `invalid_actions`, the others' through
  `RecurrentFnOutput.invalid_actions`), so no selection rule ever picks them.
* Every node's embedding is a `StochasticRecurrentState`: the state and
  afterstate embeddings plus `is_decision_node`. The wrapped `recurrent_fn`
  reads the flag of the node it expands from: a decision parent calls
  `decision_recurrent_fn` (the child is a chance node), a chance parent calls
  `chance_recurrent_fn` (the child is a decision node). The slot a node does
  not use holds its parent's embedding of that kind.
* A batch holds both kinds of parents, so both models may be needed in one
  simulation. Each model runs under a `lax.cond` that skips it when no tree of
  the batch needs it (at most one model call per simulation while the batch
  agrees, e.g. always for a single tree; two when it does not); under `vmap`
  the conds become selects and both run, as in mctx.

The data types (`DecisionRecurrentFnOutput`, `ChanceRecurrentFnOutput`,
`StochasticRecurrentState`) are in `mcts.base`. `stochastic_search` is the
search over this tree with any rules: `mcts.gumbel_stochastic` runs it with
Gumbel MuZero's.
"""
import functools
from typing import Optional

import chex
import jax
import jax.numpy as jnp

from mcts import action_selection
from mcts import base
from mcts import checks
from mcts import policies
from mcts import qtransforms
from mcts.base import ChanceRecurrentFn
from mcts.base import DecisionRecurrentFn
from mcts.base import StochasticRecurrentState
from mcts.search import search
from mcts.tree import Tree


def stochastic_muzero_policy(
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
    qtransform=qtransforms.qtransform_by_parent_and_siblings,
    dirichlet_fraction: chex.Numeric = 0.25,
    dirichlet_alpha: chex.Numeric = 0.3,
    pb_c_init: chex.Numeric = 1.25,
    pb_c_base: chex.Numeric = 19652,
    temperature: chex.Numeric = 1.0,
    embedding_dtype=None,
    skip_unused_model: bool = True,
    check_finite: bool = False) -> base.PolicyOutput:
  """Stochastic MuZero's policy: a search over decision and chance nodes.

  Decision nodes select by pUCT (as `muzero_policy`), chance nodes select
  the outcome with the largest `P(c) / (1 + N(c))`. The root is a decision
  node; its prior is mixed with Dirichlet noise and the action is sampled
  from its visit counts raised to `1 / temperature`.

  Args:
    params: any pytree, passed to both recurrent functions.
    rng_key: a PRNG key.
    root: prior_logits `[B, A]`, value `[B]`, embedding pytree `[B, ...]`
      (a state embedding).
    decision_recurrent_fn: `(params, rng_key, action [B], state_embedding)
      -> (DecisionRecurrentFnOutput(chance_logits [B, C],
      afterstate_value [B]), afterstate_embedding)`.
    chance_recurrent_fn: `(params, rng_key, chance_outcome [B],
      afterstate_embedding) -> (ChanceRecurrentFnOutput(action_logits
      [B, A], value [B], reward [B], discount [B]), state_embedding)`; the
      state embedding has the structure of `root.embedding`.
    num_simulations: the number of simulations (a Python int >= 1); each
      adds one node, a decision or a chance node.
    invalid_actions: `[B, A]`, 1 (or True) for actions invalid at the root.
    max_depth: the deepest a simulation goes, counting decision and chance
      levels alike.
    loop_fn: the loop over simulations, e.g. `jax.lax.fori_loop`.
    qtransform: maps Q-values to pUCT's value term at decision nodes.
    dirichlet_fraction, dirichlet_alpha: root noise, P <- (1 - f) P + f Dir(a)
      (drawn by `mcts.dirichlet`; none for a Python 0 fraction).
    pb_c_init, pb_c_base: pUCT's c1 and c2.
    temperature: 0 picks the most visited action.
    embedding_dtype: as in `search`.
    skip_unused_model: run each recurrent function under a `lax.cond` that
      skips it when no tree of the batch expands a node of its kind. False
      calls both on every simulation and selects (as mctx does); that avoids
      control flow, e.g. for recurrent functions that cannot run inside a
      `lax.cond`.
    check_finite: as in `search`; a node's outputs are named as the
      search sees them (a decision step's afterstate_value is its value,
      its chance_logits its prior_logits).

  Returns:
    PolicyOutput: action `[B]`, action_weights `[B, A]` = the root visit
    probabilities, and search_tree, the searched tree restricted to the
    first `A` children of each node (as mctx returns it, so that
    `search_tree.summary()` is about the `A` actions; when `C > A` the
    statistics of the outcomes `>= A` are left out).
  """
  checks.check_search_args(root, num_simulations, max_depth, invalid_actions)
  # Split as mctx does: the same key samples the same action from the same
  # visits.
  rng_key, dirichlet_key, search_key = jax.random.split(rng_key, 3)
  root = root.replace(prior_logits=policies.noisy_root_logits(
      dirichlet_key, root.prior_logits, invalid_actions,
      dirichlet_fraction=dirichlet_fraction, dirichlet_alpha=dirichlet_alpha))
  selection_fn = functools.partial(
      stochastic_action_selection, pb_c_init=pb_c_init, pb_c_base=pb_c_base,
      qtransform=qtransform)
  tree = stochastic_search(
      params, search_key, root, decision_recurrent_fn, chance_recurrent_fn,
      root_action_selection_fn=functools.partial(selection_fn, depth=0),
      interior_action_selection_fn=selection_fn,
      num_simulations=num_simulations, invalid_actions=invalid_actions,
      max_depth=max_depth, loop_fn=loop_fn, embedding_dtype=embedding_dtype,
      skip_unused_model=skip_unused_model, check_finite=check_finite)
  action, action_weights = policies.act_from_visits(rng_key, tree,
                                                    temperature)
  return base.PolicyOutput(action=action, action_weights=action_weights,
                           search_tree=tree)


def stochastic_search(
    params: base.Params,
    rng_key: chex.PRNGKey,
    root: base.RootFnOutput,
    decision_recurrent_fn: DecisionRecurrentFn,
    chance_recurrent_fn: ChanceRecurrentFn,
    *,
    root_action_selection_fn: base.RootActionSelectionFn,
    interior_action_selection_fn: base.InteriorActionSelectionFn,
    num_simulations: int,
    invalid_actions: Optional[chex.Array] = None,
    max_depth: Optional[int] = None,
    loop_fn: base.LoopFn = base.DEFAULT_LOOP_FN,
    extra_data=None,
    embedding_dtype=None,
    skip_unused_model: bool = True,
    check_finite: bool = False) -> Tree:
  """`search` over decision and chance nodes, in the `K = max(A, C)` wide
  tree this module's docstring describes.

  Args:
    params, rng_key, decision_recurrent_fn, chance_recurrent_fn,
      num_simulations, invalid_actions `[B, A]`, max_depth, loop_fn,
      embedding_dtype, skip_unused_model, check_finite: as in
      `stochastic_muzero_policy`.
    root: prior_logits `[B, A]` as the search starts from them (a policy's
      root noise already in), value `[B]`, a state embedding `[B, ...]`.
    root_action_selection_fn, interior_action_selection_fn: as in `search`,
      on the wide tree, whose nodes' embeddings are
      `StochasticRecurrentState`s (`is_decision_node` tells the kind).
    extra_data: as in `search`.

  Returns:
    The searched tree restricted to the first `A` children of each node
    (`search_tree` of the policies' outputs).
  """
  batch_size, num_actions = root.prior_logits.shape
  # Shapes and dtypes of the two models' outputs, from calls whose results
  # are unused (XLA removes them from a jitted computation).
  dummy_action = jnp.zeros((batch_size,), jnp.int32)
  decision_probe, afterstate_probe = decision_recurrent_fn(
      params, rng_key, dummy_action, root.embedding)
  checks.check_decision_output(decision_probe, batch_size)
  num_outcomes = decision_probe.chance_logits.shape[-1]
  chance_probe, state_probe = chance_recurrent_fn(
      params, rng_key, dummy_action, afterstate_probe)
  checks.check_chance_output(chance_probe, state_probe, root.embedding,
                       batch_size, num_actions)
  width = max(num_actions, num_outcomes)

  if invalid_actions is None:
    invalid_actions = jnp.zeros((batch_size, num_actions), jnp.int32)
  wide_invalid = _pad(invalid_actions, width, 1)
  root_logits = root.prior_logits
  wide_root = base.RootFnOutput(
      prior_logits=_pad(root_logits, width,
                        jnp.finfo(root_logits.dtype).min),
      value=root.value,
      embedding=StochasticRecurrentState(
          state_embedding=root.embedding,
          afterstate_embedding=jax.tree.map(jnp.zeros_like,
                                            afterstate_probe),
          is_decision_node=jnp.ones((batch_size,), bool)))

  recurrent_fn = _make_recurrent_fn(
      decision_recurrent_fn, chance_recurrent_fn, num_actions=num_actions,
      num_outcomes=num_outcomes, width=width,
      decision_zeros=jax.tree.map(jnp.zeros_like, decision_probe),
      chance_zeros=jax.tree.map(jnp.zeros_like, chance_probe),
      skip_unused_model=skip_unused_model)
  tree = search(
      params, rng_key, root=wide_root, recurrent_fn=recurrent_fn,
      root_action_selection_fn=root_action_selection_fn,
      interior_action_selection_fn=interior_action_selection_fn,
      num_simulations=num_simulations, max_depth=max_depth,
      invalid_actions=wide_invalid, extra_data=extra_data, loop_fn=loop_fn,
      embedding_dtype=embedding_dtype, check_finite=check_finite)
  return first_children(tree, num_actions)


def stochastic_action_selection(
    rng_key: chex.PRNGKey, tree: Tree, node_index: chex.Numeric,
    depth: chex.Numeric, *, pb_c_init: float = 1.25,
    pb_c_base: float = 19652.0,
    qtransform=qtransforms.qtransform_by_parent_and_siblings) -> chex.Array:
  """Selection at a node of ONE tree whose embeddings are
  `StochasticRecurrentState`s: pUCT at decision nodes, the chance rule at
  chance nodes."""
  decision = action_selection.muzero_action_selection(
      rng_key, tree, node_index, depth, pb_c_init=pb_c_init,
      pb_c_base=pb_c_base, qtransform=qtransform)
  chance = chance_outcome_selection(tree, node_index)
  return jnp.where(tree.embeddings.is_decision_node[node_index], decision,
                   chance)


def chance_outcome_selection(tree: Tree,
                             node_index: chex.Numeric) -> chex.Array:
  """argmax_c P(c) / (1 + N(c)) over the valid outcomes of a chance node of
  ONE tree (Stochastic MuZero paper, appendix; ties go to the lowest c)."""
  probs = jnp.exp(tree.children_prior_logits_at(node_index))
  visits = tree.children_visits_at(node_index)
  return action_selection.masked_argmax(probs / (visits + 1.0),
                                        tree.invalid_actions_at(node_index))


def _make_recurrent_fn(decision_recurrent_fn, chance_recurrent_fn, *,
                       num_actions, num_outcomes, width, decision_zeros,
                       chance_zeros, skip_unused_model) -> base.RecurrentFn:
  """The `recurrent_fn` of the `K = width` wide tree: dispatches each tree of
  the batch on the kind of the node it expands from."""
  children = jnp.arange(width)
  outcome_invalid = children >= num_outcomes  # Of a new chance node.
  action_invalid = children >= num_actions    # Of a new decision node.

  def run(needed, fn, skipped):
    if not skip_unused_model:
      return fn()
    return jax.lax.cond(needed, fn, skipped)

  def recurrent_fn(params, rng_key, action, embedding):
    is_decision = embedding.is_decision_node  # Of the parent: [B].
    # A tree uses only one of the two results; the other model sees the
    # index clipped into its own range.
    decision_action = jnp.minimum(action, num_actions - 1)
    outcome = jnp.minimum(action, num_outcomes - 1)

    decision_out, afterstate = run(
        jnp.any(is_decision),
        lambda: decision_recurrent_fn(params, rng_key, decision_action,
                                      embedding.state_embedding),
        lambda: (decision_zeros, embedding.afterstate_embedding))
    chance_out, state = run(
        jnp.any(~is_decision),
        lambda: chance_recurrent_fn(params, rng_key, outcome,
                                    embedding.afterstate_embedding),
        lambda: (chance_zeros, embedding.state_embedding))

    def pick(if_decision, if_chance):
      """Per tree: the result for a decision parent or a chance parent."""
      mask = is_decision.reshape((-1,) + (1,) * (jnp.ndim(if_decision) - 1))
      return jnp.where(mask, if_decision, if_chance)

    chance_logits = decision_out.chance_logits
    action_logits = chance_out.action_logits
    dtype = jnp.result_type(chance_logits, action_logits)
    lowest = jnp.finfo(dtype).min
    value = pick(decision_out.afterstate_value, chance_out.value)
    output = base.RecurrentFnOutput(
        reward=pick(jnp.zeros_like(chance_out.reward), chance_out.reward),
        discount=pick(jnp.ones_like(chance_out.discount),
                      chance_out.discount),
        prior_logits=pick(_pad(chance_logits.astype(dtype), width, lowest),
                          _pad(action_logits.astype(dtype), width, lowest)),
        value=value,
        invalid_actions=jnp.where(is_decision[:, None], outcome_invalid,
                                  action_invalid))
    new_embedding = StochasticRecurrentState(
        state_embedding=jax.tree.map(pick, embedding.state_embedding, state),
        afterstate_embedding=jax.tree.map(pick, afterstate,
                                          embedding.afterstate_embedding),
        is_decision_node=~is_decision)
    return output, new_embedding

  return recurrent_fn


def _pad(x, width, fill):
  """`[B, n]` -> `[B, width]`, the new columns set to `fill`."""
  extra = width - x.shape[-1]
  if extra == 0:
    return x
  return jnp.concatenate(
      [x, jnp.full(x.shape[:-1] + (extra,), fill, x.dtype)], axis=-1)


def first_children(tree: Tree, num: int) -> Tree:
  """The tree with only the first `num` children of every node (a batched
  tree `[B, N, K]` or ONE tree `[N, K]`)."""
  if tree.num_actions == num:
    return tree
  first = lambda x: x[..., :num]
  return tree.replace(
      children_index=first(tree.children_index),
      children_prior_logits=first(tree.children_prior_logits),
      children_visits=first(tree.children_visits),
      children_qvalues=first(tree.children_qvalues),
      root_invalid_actions=first(tree.root_invalid_actions))
