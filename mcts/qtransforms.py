"""Q-value transforms: map a node's children Q-values to selection scores.

Each takes ONE tree (as seen inside the batch map) and a scalar node index,
and returns `[A]`.
"""
import chex
import jax
import jax.numpy as jnp

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
  low = jnp.minimum(node_value,
                    jnp.min(jnp.where(visited, qvalues, node_value)))
  high = jnp.maximum(node_value,
                     jnp.max(jnp.where(visited, qvalues, node_value)))
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
  raw_value = tree.raw_values[node_index]
  if use_mixed_value:
    prior_probs = jnp.exp(tree.children_prior_logits_at(node_index))
    value = mixed_value(raw_value, qvalues, visit_counts, prior_probs)
  else:
    value = raw_value
  completed = jnp.where(visit_counts > 0, qvalues, value)
  if rescale_values:
    low = jnp.min(completed, axis=-1, keepdims=True)
    high = jnp.max(completed, axis=-1, keepdims=True)
    completed = (completed - low) / jnp.maximum(high - low, epsilon)
  visit_scale = maxvisit_init + jnp.max(visit_counts, axis=-1)
  return visit_scale * value_scale * completed


def mixed_value(raw_value: chex.Array, qvalues: chex.Array,
                visit_counts: chex.Array, prior_probs: chex.Array
                ) -> chex.Array:
  """v_mix = (v + sum_b N(b) * sum_{a: N(a)>0} pi(a) q(a) / sum_{a: N(a)>0}
  pi(a)) / (1 + sum_b N(b))  (Gumbel MuZero paper, eq. 33).

  Args:
    raw_value: `[]` the network's value of the node.
    qvalues, visit_counts, prior_probs: `[A]`.
  """
  total_visits = jnp.sum(visit_counts, axis=-1)
  visited = visit_counts > 0
  # Keeps the weighted mean finite when visited actions have zero prior.
  prior_probs = jnp.maximum(jnp.finfo(prior_probs.dtype).tiny, prior_probs)
  visited_mass = jnp.sum(jnp.where(visited, prior_probs, 0.0), axis=-1)
  weighted_q = jnp.sum(
      jnp.where(visited, prior_probs * qvalues /
                jnp.where(visited, visited_mass, 1.0), 0.0), axis=-1)
  return (raw_value + total_visits * weighted_q) / (total_visits + 1)
