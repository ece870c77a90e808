"""Data types and function signatures shared by the whole library.

Shapes use `B` for the batch of roots, `A` for the number of actions and
`N = num_simulations + 1` for the number of nodes per tree.
"""
from typing import Any, Callable, Optional, Tuple, TypeVar

import chex
import jax

Params = Any  # Any pytree handed unchanged to `recurrent_fn`.
Action = chex.Array  # int32 [B]
RecurrentState = Any  # A pytree of [B, ...] arrays (the embeddings).
NodeIndices = chex.Array
Depth = chex.Array
T = TypeVar("T")


@chex.dataclass(frozen=True)
class RootFnOutput:
  """What the representation network gives for the roots of a search.

  Attributes:
    prior_logits: `[B, A]` policy logits at the roots.
    value: `[B]` value estimates of the roots.
    embedding: pytree of `[B, ...]` arrays, the roots' model states.
  """
  prior_logits: chex.Array
  value: chex.Array
  embedding: RecurrentState


@chex.dataclass(frozen=True)
class RecurrentFnOutput:
  """What the dynamics + prediction networks give for one step.

  Attributes:
    reward: `[B]` reward received on the transition into the new node.
    discount: `[B]` discount of the new node's value; use `-1` between the
      plies of a two-player zero-sum game (values from the mover's view).
    prior_logits: `[B, A]` policy logits at the new node.
    value: `[B]` value estimate of the new node.
    invalid_actions: optional `[B, A]`, 1 (or True) for the actions that are
      illegal at the new node; every selection rule skips them. A node whose
      actions are all marked invalid (e.g. a terminal state) is searched
      without a mask.
  """
  reward: chex.Array
  discount: chex.Array
  prior_logits: chex.Array
  value: chex.Array
  invalid_actions: Optional[chex.Array] = None


@chex.dataclass(frozen=True)
class PolicyOutput:
  """What a policy returns.

  Attributes:
    action: `[B]` int32, the action to play.
    action_weights: `[B, A]`, the search's policy target.
    search_tree: the `Tree` built by the search.
  """
  action: chex.Array
  action_weights: chex.Array
  search_tree: Any


@chex.dataclass(frozen=True)
class SearchSummary:
  """Statistics of the roots of a searched tree.

  Attributes:
    visit_counts: `[B, A]` visits of the root's children.
    visit_probs: `[B, A]` the visits normalised to a distribution.
    value: `[B]` value of the roots (mean of the backed-up returns).
    qvalues: `[B, A]` Q-values of the root's children.
  """
  visit_counts: chex.Array
  visit_probs: chex.Array
  value: chex.Array
  qvalues: chex.Array


# recurrent_fn(params, rng_key, action [B], embedding) ->
#     (RecurrentFnOutput, new embedding)
RecurrentFn = Callable[[Params, chex.PRNGKey, Action, RecurrentState],
                       Tuple[RecurrentFnOutput, RecurrentState]]
# An action selection rule for ONE tree (the search maps it over the batch):
# fn(rng_key, tree, node_index [], depth []) -> action [] int32.
RootActionSelectionFn = Callable[[chex.PRNGKey, Any, NodeIndices], chex.Array]
InteriorActionSelectionFn = Callable[
    [chex.PRNGKey, Any, NodeIndices, Depth], chex.Array]
LoopFn = Callable[[int, int, Callable[[Any, T], T], T], T]
DEFAULT_LOOP_FN: LoopFn = jax.lax.fori_loop


# ---- Stochastic MuZero (`mcts.stochastic`): a decision node's and a chance
# node's model outputs, and the embedding each node stores.


@chex.dataclass(frozen=True)
class DecisionRecurrentFnOutput:
  """What the model gives for an action taken at a decision node.

  Attributes:
    chance_logits: `[B, C]` logits of the `C` chance outcomes at the
      afterstate.
    afterstate_value: `[B]` value of the afterstate.
  """
  chance_logits: chex.Array
  afterstate_value: chex.Array


@chex.dataclass(frozen=True)
class ChanceRecurrentFnOutput:
  """What the model gives for a chance outcome at an afterstate.

  Attributes:
    action_logits: `[B, A]` policy logits at the new state.
    value: `[B]` value of the new state.
    reward: `[B]` reward on the transition into the new state.
    discount: `[B]` discount on that transition (-1 between the plies of a
      two-player zero-sum game).
  """
  action_logits: chex.Array
  value: chex.Array
  reward: chex.Array
  discount: chex.Array


@chex.dataclass(frozen=True)
class StochasticRecurrentState:
  """The embedding a Stochastic MuZero search stores for each node.

  Attributes:
    state_embedding: pytree `[B, ...]`, the state (meaningful at decision
      nodes; at a chance node, the state it was reached from).
    afterstate_embedding: pytree `[B, ...]`, the afterstate (meaningful at
      chance nodes; at a decision node below the root, the afterstate it
      was reached from; zeros at the root).
    is_decision_node: `[B]` bool.
  """
  state_embedding: Any
  afterstate_embedding: Any
  is_decision_node: chex.Array


# decision_recurrent_fn(params, rng_key, action [B], state_embedding) ->
#     (DecisionRecurrentFnOutput, afterstate_embedding)
DecisionRecurrentFn = Callable[
    [Params, chex.PRNGKey, chex.Array, Any],
    Tuple[DecisionRecurrentFnOutput, Any]]
# chance_recurrent_fn(params, rng_key, chance_outcome [B],
#     afterstate_embedding) -> (ChanceRecurrentFnOutput, state_embedding)
ChanceRecurrentFn = Callable[
    [Params, chex.PRNGKey, chex.Array, Any],
    Tuple[ChanceRecurrentFnOutput, Any]]
