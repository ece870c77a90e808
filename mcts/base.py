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

# The name of the `vmap` axis over which `search` maps the selection rules,
# one tree each.
TREE_AXIS = "mcts_trees"

# Below this many elements (see `elements_across_trees`),
# the selection rules reduce a row in one variadic reduction: an argmax as
# one (value, index) reduction, a softmax's maximum and sum as one online
# reduction, the children's statistics as one. On CPU that is one kernel
# instead of several, and it keeps the walk of one tree of 16 actions under
# the size (1 KiB) below which XLA compiles a loop as one function: pUCT
# 1.5-2x and Gumbel 1.2-1.9x faster at batch 1. For more elements the
# separate reductions, which XLA vectorises and a variadic one it does not,
# are faster: argmax 1.6x for one tree of 362 actions, pUCT 1.15-1.35x with
# 16-256 trees of 16 actions.
ONE_PASS_BELOW = 64


def elements_across_trees(row: chex.Array) -> int:
  """`row.size` times the number of trees `search` maps a selection rule
  over (1 outside a search): how many elements a reduction of `row` touches
  in all."""
  try:
    # psum of a Python constant is the axis size, a Python int (as
    # jax.lax.axis_size, which needs jax >= 0.6.1).
    num_trees = jax.lax.psum(1, TREE_AXIS)
  except NameError:
    num_trees = 1
  return num_trees * row.size


def reduce_in_one_pass(row: chex.Array) -> bool:
  """Whether a selection rule should reduce `row` `[..., A]` along its last
  axis in one variadic reduction: when `elements_across_trees(row)` is below
  `ONE_PASS_BELOW`."""
  return elements_across_trees(row) < ONE_PASS_BELOW
