"""Search over sampled actions, for large or continuous action spaces
(Sampled MuZero: Hubert et al. 2021, "Learning and Planning in Complex
Action Spaces").

Each node holds K actions sampled from the model's proposal; the search
runs over those K, so the tree's action dimension is K whatever the action
space. The actions themselves (any shape, e.g. `[D]` floats) travel in the
embedding: the wrapped `recurrent_fn` looks up the chosen sample of the
parent and hands it to the user's model, which returns the next node's own
K samples.
"""
from typing import Any, Optional

import chex
import jax
import jax.numpy as jnp

from mcts import base
from mcts import policies


@chex.dataclass(frozen=True)
class SampledRootFnOutput:
  """The roots of a sampled search.

  Attributes:
    sampled_actions: `[B, K, ...]` K actions sampled at each root.
    prior_logits: `[B, K]` the search's prior over the samples. For samples
      drawn from the policy itself, use zeros: the paper's prior
      beta_hat * pi / beta is then uniform over the samples.
    value: `[B]`.
    embedding: pytree of `[B, ...]`.
  """
  sampled_actions: chex.Array
  prior_logits: chex.Array
  value: chex.Array
  embedding: Any


@chex.dataclass(frozen=True)
class SampledRecurrentFnOutput:
  """One model step of a sampled search: reward, discount, value `[B]`, and
  the new node's `sampled_actions [B, K, ...]` and `prior_logits [B, K]`."""
  reward: chex.Array
  discount: chex.Array
  value: chex.Array
  sampled_actions: chex.Array
  prior_logits: chex.Array


@chex.dataclass(frozen=True)
class SampledPolicyOutput:
  """action `[B, ...]` (the chosen sample), action_index `[B]` (its slot),
  action_weights `[B, K]` (the policy target over the samples),
  sampled_actions `[B, K, ...]` (the root's samples), search_tree."""
  action: chex.Array
  action_index: chex.Array
  action_weights: chex.Array
  sampled_actions: chex.Array
  search_tree: Any


def sampled_muzero_policy(params: base.Params, rng_key: chex.PRNGKey,
                          root: SampledRootFnOutput, recurrent_fn,
                          num_simulations: int,
                          max_depth: Optional[int] = None,
                          loop_fn: base.LoopFn = base.DEFAULT_LOOP_FN, *,
                          policy: str = "gumbel",
                          **policy_kwargs) -> SampledPolicyOutput:
  """Searches over K sampled actions per node.

  Args:
    params, rng_key, num_simulations, max_depth, loop_fn: as in the
      policies.
    root: the roots with their samples.
    recurrent_fn: `(params, rng_key, action [B, ...], embedding) ->
      (SampledRecurrentFnOutput, embedding)`, called with actual actions.
    policy: "gumbel" (Gumbel MuZero over the samples, the default) or
      "muzero" (pUCT).
    **policy_kwargs: passed to the policy (e.g. `gumbel_scale`,
      `max_num_considered_actions`, `dirichlet_fraction`, `temperature`).

  Returns:
    SampledPolicyOutput.
  """
  if policy not in ("gumbel", "muzero"):
    raise ValueError(f"policy must be 'gumbel' or 'muzero'; got {policy!r}.")
  batch_size, num_samples = jnp.shape(root.prior_logits)
  if jnp.shape(root.sampled_actions)[:2] != (batch_size, num_samples):
    raise ValueError(
        "root.sampled_actions must have shape [B, K, ...] = "
        f"[{batch_size}, {num_samples}, ...] (from root.prior_logits); got "
        f"{jnp.shape(root.sampled_actions)}.")
  batch_range = jnp.arange(batch_size)

  def slot_recurrent_fn(params, rng_key, slot, embedding):
    user_embedding, samples = embedding
    out, new_embedding = recurrent_fn(params, rng_key,
                                      samples[batch_range, slot],
                                      user_embedding)
    step = base.RecurrentFnOutput(reward=out.reward, discount=out.discount,
                                  prior_logits=out.prior_logits,
                                  value=out.value)
    return step, (new_embedding, out.sampled_actions.astype(samples.dtype))

  slot_root = base.RootFnOutput(
      prior_logits=root.prior_logits, value=root.value,
      embedding=(root.embedding, root.sampled_actions))
  run = (policies.gumbel_muzero_policy if policy == "gumbel"
         else policies.muzero_policy)
  out = run(params, rng_key, slot_root, slot_recurrent_fn, num_simulations,
            max_depth=max_depth, loop_fn=loop_fn, **policy_kwargs)
  return SampledPolicyOutput(
      action=root.sampled_actions[batch_range, out.action],
      action_index=out.action, action_weights=out.action_weights,
      sampled_actions=root.sampled_actions, search_tree=out.search_tree)
