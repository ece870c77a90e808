"""Q-value transforms: map a node's children Q-values to selection scores.

Each takes ONE tree (as seen inside the batch map) and a scalar node index,
and returns `[A]`.

Each also has a description, a frozen callable that carries its numbers
(`ByMinMax`, `ByParentAndSiblings`, `CompletedByMixValue`): the policies
describe their selection rule with it (`mcts.rules`) so that a lowering can
run the rule its own way. Users pass Q-transforms as mctx's users do, as
the functions or `functools.partial`s of them; `described` turns those
into descriptions, the one place that recognises a Q-transform.
"""
import functools
from typing import Any, NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp

from mcts import reductions
from mcts.tree import Tree


def qtransform_by_min_max(tree: Tree, node_index: chex.Numeric, *,
                          min_value: chex.Numeric,
                          max_value: chex.Numeric) -> chex.Array:
  """Q normalised by fixed bounds: (Q - min) / (max - min); unvisited
  children score 0."""
  qvalues = tree.qvalues(node_index)
  visited = tree.children_visits_at(node_index) > 0
  value_score = jnp.where(visited, qvalues, min_value)
  return (value_score - min_value) / (max_value - min_value)


def qtransform_by_parent_and_siblings(tree: Tree, node_index: chex.Numeric, *,
                                      epsilon: chex.Numeric = 1e-8
                                      ) -> chex.Array:
  """Q normalised by the range of the node's value and visited children's Qs
  (the MuZero paper's min-max normalisation, per node); unvisited children
  score 0."""
  qvalues = tree.qvalues(node_index)
  visited = tree.children_visits_at(node_index) > 0
  node_value = tree.node_values[node_index]
  visited_or_node = jnp.where(visited, qvalues, node_value)
  low = jnp.minimum(node_value, reductions.row_min(visited_or_node))
  high = jnp.maximum(node_value, reductions.row_max(visited_or_node))
  completed = jnp.where(visited, qvalues, low)
  return (completed - low) / jnp.maximum(high - low, epsilon)


def qtransform_completed_by_mix_value(
    tree: Tree, node_index: chex.Numeric, *,
    value_scale: chex.Numeric = 0.1,
    maxvisit_init: chex.Numeric = 50.0,
    rescale_values: bool = True,
    use_mixed_value: bool = True,
    epsilon: chex.Numeric = 1e-8) -> chex.Array:
  """Completed Q-values, sigma-scaled (Gumbel MuZero paper, Danihelka et al.
  2022, eq. 8 and appendix D).

  Unvisited children get the mixed value estimate v_mix; the completed Qs
  are rescaled to [0, 1] and multiplied by (c_visit + max_b N(b)) * c_scale.
  """
  qvalues = tree.qvalues(node_index)
  visit_counts = tree.children_visits_at(node_index)
  prior_probs = jnp.exp(tree.children_prior_logits_at(node_index))
  stats = children_stats(qvalues, visit_counts, prior_probs)
  value = tree.raw_values[node_index]
  if use_mixed_value:
    value = mixed_value(value, stats)
  completed = jnp.where(visit_counts > 0, qvalues, value[..., None])
  if rescale_values:
    low, high = _completed_range(completed, value, stats)
    completed = (completed - low) / jnp.maximum(high - low, epsilon)
  visit_scale = maxvisit_init + stats.max_visits
  return visit_scale[..., None] * value_scale * completed


def _completed_range(completed, value, stats):
  """min and max `[..., 1]` of the completed Qs `[..., A]`: from the
  visited Qs' and the completing value where `stats` has them."""
  if stats.min_q is None:
    return (reductions.row_min(completed)[..., None],
            reductions.row_max(completed)[..., None])
  some_unvisited = stats.num_unvisited > 0
  low = jnp.where(some_unvisited, jnp.minimum(stats.min_q, value),
                  stats.min_q)
  high = jnp.where(some_unvisited, jnp.maximum(stats.max_q, value),
                   stats.max_q)
  return low[..., None], high[..., None]


class ChildrenStats(NamedTuple):
  """Sums and extremes over a node's children `[A]` (each `[]`)."""
  total_visits: chex.Array    # sum_b N(b)
  max_visits: chex.Array      # max_b N(b)
  visited_mass: chex.Array    # sum_{a: N(a)>0} pi(a)
  visited_pi_q: chex.Array    # sum_{a: N(a)>0} pi(a) q(a)
  # Only from the one-pass reduction (None otherwise):
  min_q: Optional[chex.Array] = None          # min_{a: N(a)>0} q(a)
  max_q: Optional[chex.Array] = None          # max_{a: N(a)>0} q(a)
  num_unvisited: Optional[chex.Array] = None  # |{a: N(a) = 0}|


def children_stats(qvalues: chex.Array, visit_counts: chex.Array,
                   prior_probs: chex.Array) -> ChildrenStats:
  """The statistics of `ChildrenStats` from `[..., A]` rows: one variadic
  reduction, with the visited Qs' extremes, where
  `reductions.reduce_in_one_pass` says so; otherwise separate vectorised
  reductions, without them."""
  visited = visit_counts > 0
  # Keeps the weighted mean finite when visited actions have zero prior.
  prior_probs = jnp.maximum(jnp.finfo(prior_probs.dtype).tiny, prior_probs)
  zero = jnp.zeros((), qvalues.dtype)
  terms = (visit_counts, visit_counts,
           jnp.where(visited, prior_probs, zero),
           jnp.where(visited, prior_probs * qvalues, zero))
  if not reductions.reduce_in_one_pass(qvalues):
    reducers = (reductions.row_sum, reductions.row_max, reductions.row_sum,
                reductions.row_sum)
    return ChildrenStats(*(r(t) for r, t in zip(reducers, terms)))
  terms += (jnp.where(visited, qvalues, jnp.inf),
            jnp.where(visited, qvalues, -jnp.inf),
            (~visited).astype(jnp.int32))
  return ChildrenStats(*_reduce_in_one_pass(terms))


# `children_stats`' reductions of its terms (sum, max, sum, sum, min, max,
# sum), and their identities.
_OPS = (jnp.add, jnp.maximum, jnp.add, jnp.add, jnp.minimum, jnp.maximum,
        jnp.add)
_INITS = (0, 0, 0, 0, jnp.inf, -jnp.inf, 0)


@jax.custom_jvp
def _reduce_in_one_pass(terms):
  """The `_OPS` reductions of `terms` `[..., A]` along the last axis, in one
  variadic reduction (which JAX cannot differentiate: its derivatives are
  those of the separate reductions)."""
  inits = tuple(jnp.asarray(i, t.dtype) for i, t in zip(_INITS, terms))
  return jax.lax.reduce(
      terms, inits,
      lambda x, y: tuple(op(a, b) for op, a, b in zip(_OPS, x, y)),
      (terms[0].ndim - 1,))


@_reduce_in_one_pass.defjvp
def _reduce_in_one_pass_jvp(primals, tangents):
  reducers = {jnp.add: jnp.sum, jnp.maximum: jnp.max, jnp.minimum: jnp.min}
  _, tangents_out = jax.jvp(
      lambda terms: tuple(reducers[op](t, axis=-1)
                          for op, t in zip(_OPS, terms)), primals, tangents)
  return _reduce_in_one_pass(*primals), tangents_out


def mixed_value(raw_value: chex.Array, stats: ChildrenStats) -> chex.Array:
  """v_mix = (v + sum_b N(b) * sum_{a: N(a)>0} pi(a) q(a) / sum_{a: N(a)>0}
  pi(a)) / (1 + sum_b N(b))  (Gumbel MuZero paper, eq. 33).

  Args:
    raw_value: `[]` the network's value of the node.
    stats: the node's `children_stats`.
  """
  total = stats.total_visits.astype(raw_value.dtype)
  # No 0 / 0 where no child is visited, not even in the branch not taken
  # (a NaN there trips `jax.debug_nans` and poisons reverse mode).
  visited = stats.visited_mass > 0
  weighted_q = jnp.where(visited, stats.visited_pi_q / jnp.where(
      visited, stats.visited_mass, 1), 0.0)
  return (raw_value + total * weighted_q) / (total + 1)


class ByMinMax(NamedTuple):
  """`qtransform_by_min_max` with its numbers; called, it is that
  Q-transform."""
  min_value: Any
  max_value: Any

  def __call__(self, tree: Tree, node_index: chex.Numeric) -> chex.Array:
    return qtransform_by_min_max(tree, node_index, min_value=self.min_value,
                                 max_value=self.max_value)


class ByParentAndSiblings(NamedTuple):
  """`qtransform_by_parent_and_siblings` with its numbers (its defaults
  unless given)."""
  epsilon: Any = 1e-8

  def __call__(self, tree: Tree, node_index: chex.Numeric) -> chex.Array:
    return qtransform_by_parent_and_siblings(tree, node_index,
                                             epsilon=self.epsilon)


class CompletedByMixValue(NamedTuple):
  """`qtransform_completed_by_mix_value` with its numbers (its defaults
  unless given)."""
  value_scale: Any = 0.1
  maxvisit_init: Any = 50.0
  rescale_values: bool = True
  use_mixed_value: bool = True
  epsilon: Any = 1e-8

  def __call__(self, tree: Tree, node_index: chex.Numeric) -> chex.Array:
    return qtransform_completed_by_mix_value(tree, node_index,
                                             **self._asdict())


# The descriptions of the library's Q-transforms, by the function each
# describes.
LIBRARY = (ByMinMax, ByParentAndSiblings, CompletedByMixValue)
_DESCRIPTION_OF = (
    (qtransform_by_min_max, ByMinMax),
    (qtransform_by_parent_and_siblings, ByParentAndSiblings),
    (qtransform_completed_by_mix_value, CompletedByMixValue),
)


def described(qtransform):
  """`qtransform` as a description (one of `LIBRARY`) where it is one of
  this library's Q-transforms: a description already, the function itself,
  or a `functools.partial` of it with keyword arguments only (as mctx's
  users write `functools.partial(qtransform_by_min_max, min_value=-1,
  max_value=1)`); any other Q-transform is returned unchanged.

  The description computes the same values (it calls the same function
  with the same numbers); it only makes them readable to whoever lowers a
  selection rule.
  """
  if isinstance(qtransform, LIBRARY):
    return qtransform
  func, keywords = qtransform, {}
  if isinstance(qtransform, functools.partial):
    if qtransform.args:
      return qtransform
    func, keywords = qtransform.func, qtransform.keywords
  description = next((d for f, d in _DESCRIPTION_OF if f is func), None)
  if description is None or not set(keywords) <= set(description._fields):
    return qtransform
  try:
    return description(**keywords)
  except TypeError:  # A required number left out: the call fails later.
    return qtransform
