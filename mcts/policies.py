"""Policies built on `search`: MuZero (pUCT) and Gumbel MuZero."""
from typing import Optional

import chex
import jax
import jax.numpy as jnp

from mcts import action_selection
from mcts import base
from mcts import checks
from mcts import dirichlet
from mcts import qtransforms
from mcts import rules
from mcts import seq_halving
from mcts.search import search
from mcts.tree import Tree, log_prior


def muzero_policy(
    params: base.Params,
    rng_key: chex.PRNGKey,
    root: base.RootFnOutput,
    recurrent_fn: base.RecurrentFn,
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
    tree: Optional[Tree] = None,
    capacity: Optional[int] = None,
    check_finite: bool = False) -> base.PolicyOutput:
  """MuZero's policy (Schrittwieser et al. 2020): pUCT search from roots
  whose priors are mixed with Dirichlet noise, then an action sampled from
  the root visit counts raised to 1 / temperature.

  Args:
    params, rng_key, root, recurrent_fn, num_simulations, invalid_actions
      `[B, A]`, max_depth, loop_fn: as in `search`.
    qtransform: maps Q-values to pUCT's value term.
    dirichlet_fraction, dirichlet_alpha: root noise, P <- (1 - f) P + f Dir(a)
      (drawn by `mcts.dirichlet`; none for a Python 0 fraction).
    pb_c_init, pb_c_base: pUCT's c1 and c2.
    temperature: 0 picks the most visited action.
    embedding_dtype: as in `search` (e.g. `jnp.bfloat16` to halve the
      memory of the stored embeddings).
    tree, capacity: a kept tree to continue (from `get_subtree`) and the
      nodes per tree, as in `search`.
    check_finite: as in `search`: `checkify` the model's outputs.

  Returns:
    PolicyOutput: action `[B]`, action_weights `[B, A]` = root visit
    probabilities, search_tree.
  """
  checks.check_search_args(root, num_simulations, max_depth, invalid_actions)
  # Split as mctx does: the same key samples the same action from the same
  # visits.
  rng_key, dirichlet_key, search_key = jax.random.split(rng_key, 3)
  root = root.replace(prior_logits=noisy_root_logits(
      dirichlet_key, root.prior_logits, invalid_actions,
      dirichlet_fraction=dirichlet_fraction, dirichlet_alpha=dirichlet_alpha))
  # The rule describes itself to the search's lowering (`mcts.rules`).
  rule = rules.Puct(pb_c_init=pb_c_init, pb_c_base=pb_c_base,
                    qtransform=qtransforms.described(qtransform))
  tree = search(
      params, search_key, root=root, recurrent_fn=recurrent_fn,
      root_action_selection_fn=rule, interior_action_selection_fn=rule,
      num_simulations=num_simulations, max_depth=max_depth,
      invalid_actions=invalid_actions, loop_fn=loop_fn,
      embedding_dtype=embedding_dtype, tree=tree, capacity=capacity,
      check_finite=check_finite)
  action, action_weights = act_from_visits(rng_key, tree, temperature)
  return base.PolicyOutput(action=action, action_weights=action_weights,
                           search_tree=tree)


def gumbel_muzero_policy(
    params: base.Params,
    rng_key: chex.PRNGKey,
    root: base.RootFnOutput,
    recurrent_fn: base.RecurrentFn,
    num_simulations: int,
    invalid_actions: Optional[chex.Array] = None,
    max_depth: Optional[int] = None,
    loop_fn: base.LoopFn = base.DEFAULT_LOOP_FN,
    *,
    qtransform=qtransforms.qtransform_completed_by_mix_value,
    max_num_considered_actions: int = 16,
    gumbel_scale: chex.Numeric = 1.0,
    embedding_dtype=None,
    tree: Optional[Tree] = None,
    capacity: Optional[int] = None,
    check_finite: bool = False) -> base.PolicyOutput:
  """Gumbel MuZero's policy (Danihelka et al. 2022): Gumbel-Top-k sampling
  of root actions, sequential halving over them, deterministic interior
  selection; acts with the best surviving action.

  Args:
    params, rng_key, root, recurrent_fn, num_simulations, invalid_actions
      `[B, A]`, max_depth, loop_fn: as in `search`.
    qtransform: completes and scales the Q-values.
    max_num_considered_actions: k, the actions sampled without replacement.
    gumbel_scale: scale of the Gumbel noise; 0 makes the search
      deterministic (and a Python 0 draws no noise).
    embedding_dtype, tree, capacity, check_finite: as in `search`. With a
      kept tree, the halving schedules the new simulations; Q-values use
      all visits.

  Returns:
    PolicyOutput: action `[B]`, action_weights `[B, A]` = the improved policy
    softmax(logits + sigma(completed q)), search_tree.
  """
  checks.check_search_args(root, num_simulations, max_depth, invalid_actions)
  checks.check_int_at_least("max_num_considered_actions",
                            max_num_considered_actions, 1)
  root = root.replace(prior_logits=mask_invalid_actions(
      root.prior_logits, invalid_actions))
  prior_visits = None
  if tree is not None:
    prior_visits = tree.children_visits_at(
        jnp.zeros(root.value.shape, jnp.int32))
  # Split as mctx does: the same key gives the same Gumbel noise.
  rng_key, gumbel_key = jax.random.split(rng_key)
  gumbel = draw_gumbel(gumbel_key, root.prior_logits, gumbel_scale)
  described = qtransforms.described(qtransform)
  # The rules describe themselves to the search's lowering (`mcts.rules`).
  tree = search(
      params, rng_key, root=root, recurrent_fn=recurrent_fn,
      root_action_selection_fn=rules.GumbelRoot(
          num_simulations=num_simulations,
          max_num_considered_actions=max_num_considered_actions,
          qtransform=described),
      interior_action_selection_fn=rules.GumbelInterior(
          qtransform=described),
      num_simulations=num_simulations, max_depth=max_depth,
      invalid_actions=invalid_actions,
      extra_data=gumbel_extra_data(
          gumbel, root.prior_logits, invalid_actions,
          max_num_considered_actions=max_num_considered_actions,
          qtransform=described, prior_visits=prior_visits),
      loop_fn=loop_fn, embedding_dtype=embedding_dtype, tree=tree,
      capacity=capacity, check_finite=check_finite)
  action, action_weights = gumbel_act(tree, root.prior_logits, gumbel,
                                      invalid_actions, qtransform)
  return base.PolicyOutput(action=action, action_weights=action_weights,
                           search_tree=tree)


def mask_invalid_actions(logits, invalid_actions):
  """Shifts logits to max 0 and gives invalid actions the lowest float."""
  if invalid_actions is None:
    return logits
  logits = logits - jnp.max(logits, axis=-1, keepdims=True)
  return jnp.where(invalid_actions, jnp.finfo(logits.dtype).min, logits)


def logits_from_probs(probs):
  return jnp.log(jnp.maximum(probs, jnp.finfo(probs.dtype).tiny))


def noisy_root_logits(rng_key, prior_logits, invalid_actions, *,
                      dirichlet_fraction, dirichlet_alpha):
  """The logits `[B, A]` a pUCT search starts from: softmax(prior_logits)
  mixed with Dirichlet noise, invalid actions masked."""
  noisy_probs = add_dirichlet_noise(
      rng_key, jax.nn.softmax(prior_logits),
      dirichlet_fraction=dirichlet_fraction, dirichlet_alpha=dirichlet_alpha)
  return mask_invalid_actions(logits_from_probs(noisy_probs),
                              invalid_actions)


def act_from_visits(rng_key, tree, temperature):
  """The root visit probabilities `[B, A]` and an action `[B]` sampled from
  them raised to 1 / temperature; returns (action, action_weights)."""
  action_weights = tree.summary().visit_probs
  action_logits = apply_temperature(logits_from_probs(action_weights),
                                    temperature)
  action = jax.random.categorical(rng_key, action_logits).astype(jnp.int32)
  return action, action_weights


def add_dirichlet_noise(rng_key, probs, *, dirichlet_alpha,
                         dirichlet_fraction):
  """(1 - f) * probs + f * Dirichlet(alpha) noise, per row of `[B, A]`; no
  noise is drawn when f is a Python 0."""
  if checks.is_python_zero(dirichlet_fraction):
    return probs
  checks.check_positive("dirichlet_alpha", dirichlet_alpha)
  noise = dirichlet.dirichlet(rng_key, dirichlet_alpha, probs.shape,
                              probs.dtype)
  return (1 - dirichlet_fraction) * probs + dirichlet_fraction * noise


def apply_temperature(logits, temperature):
  """logits / temperature, shifted to max 0; temperature 0 gives a one-hot
  argmax through a huge inverse temperature."""
  logits = logits - jnp.max(logits, axis=-1, keepdims=True)
  return logits / jnp.maximum(jnp.finfo(logits.dtype).tiny, temperature)


def draw_gumbel(rng_key, prior_logits, gumbel_scale):
  """The root's Gumbel noise `[B, A]`, `gumbel_scale * Gumbel(0, 1)` in the
  dtype of `prior_logits`; zeros, none drawn, for a Python 0 scale."""
  if checks.is_python_zero(gumbel_scale):
    return jnp.zeros_like(prior_logits)
  return gumbel_scale * jax.random.gumbel(
      rng_key, shape=prior_logits.shape, dtype=prior_logits.dtype)


def gumbel_extra_data(gumbel, prior_logits, invalid_actions, *,
                      max_num_considered_actions, qtransform,
                      prior_visits=None
                      ) -> action_selection.GumbelMuZeroExtraData:
  """What Gumbel MuZero's root rule reads from the tree: the noise `[B, A]`,
  a kept tree's root visits `[B, A]` (or None) and, for a fresh tree with a
  library Q-transform (which treats all unvisited children alike), the
  considered actions `[B, k + 1]` (`considered_root_actions`)."""
  considered = None
  if prior_visits is None and isinstance(qtransform, qtransforms.LIBRARY):
    considered = action_selection.considered_root_actions(
        gumbel, log_prior(prior_logits), invalid_actions,
        max_num_considered_actions)
  return action_selection.GumbelMuZeroExtraData(
      root_gumbel=gumbel, root_prior_visits=prior_visits,
      root_considered=considered)


def gumbel_act(tree, prior_logits, gumbel, invalid_actions, qtransform):
  """Gumbel MuZero's action and policy target (Danihelka et al. 2022,
  section 3 and eq. 11) from a searched tree whose root has the `A` actions
  of `prior_logits` `[B, A]` (invalid ones masked as `mask_invalid_actions`
  does); returns (action `[B]`, action_weights `[B, A]`).

  The action is the best surviving one of sequential halving,
  argmax over the most visited actions of g(a) + logits(a) + sigma(q(a)),
  with q the completed Q-values; action_weights is the improved policy
  softmax(logits + sigma(completed q)).
  """
  visit_counts = action_selection.new_root_visits(
      tree, tree.summary().visit_counts)
  # The most visited actions survived the halving; act with the best of them.
  considered_visit = jnp.max(visit_counts, axis=-1, keepdims=True)
  completed_qvalues = jax.vmap(qtransform, in_axes=(0, None))(
      tree, tree.ROOT_INDEX)
  shifted_logits = prior_logits - jnp.max(
      prior_logits, axis=-1, keepdims=True)
  to_argmax = seq_halving.score_considered(
      considered_visit, gumbel, shifted_logits, completed_qvalues,
      visit_counts)
  action = action_selection.masked_argmax(to_argmax, invalid_actions)
  action_weights = jax.nn.softmax(mask_invalid_actions(
      prior_logits + completed_qvalues, invalid_actions))
  return action, action_weights
