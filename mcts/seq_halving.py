"""Sequential halving over the root's actions (Karnin et al. 2013), as used
by Gumbel MuZero (Danihelka et al. 2022) to spend a fixed simulation budget.
"""
import functools
import math
from typing import Tuple

import chex
import jax.numpy as jnp


def considered_visits_sequence(max_num_considered_actions: int,
                               num_simulations: int) -> Tuple[int, ...]:
  """The visit count an action must have to be chosen, per simulation.

  Starts with `m = max_num_considered_actions` actions; each phase gives
  every considered action max(1, floor(n / (ceil(log2 m) * k))) more visits,
  then halves the considered set (never below 2).
  """
  if max_num_considered_actions <= 1:
    return tuple(range(num_simulations))
  num_phases = math.ceil(math.log2(max_num_considered_actions))
  sequence = []
  considered = max_num_considered_actions
  visits = 0  # Every considered action has this many visits at a phase start.
  while len(sequence) < num_simulations:
    visits_per_action = max(
        1, int(num_simulations / (num_phases * considered)))
    for extra in range(visits_per_action):
      sequence.extend([visits + extra] * considered)
    visits += visits_per_action
    considered = max(2, considered // 2)
  return tuple(sequence[:num_simulations])


@functools.lru_cache(maxsize=64)
def considered_visits_table(max_num_considered_actions: int,
                            num_simulations: int) -> Tuple[Tuple[int, ...]]:
  """Row `k` is `considered_visits_sequence(k, num_simulations)`, for the
  roots that have only k valid actions."""
  return tuple(considered_visits_sequence(k, num_simulations)
               for k in range(max_num_considered_actions + 1))


def score_considered(considered_visit: chex.Numeric, gumbel: chex.Array,
                     logits: chex.Array, normalized_qvalues: chex.Array,
                     visit_counts: chex.Array) -> chex.Array:
  """g(a) + logits(a) + sigma(q(a)) for the actions with exactly
  `considered_visit` visits, -inf for the others.

  Args:
    considered_visit: `[]` (or `[B, 1]`).
    gumbel, logits, normalized_qvalues, visit_counts: `[A]` (or `[B, A]`);
      logits at most 0 (log-probabilities, or shifted by their maximum) so
      that adding them keeps the precision of the other terms.
  """
  score = jnp.maximum(-1e9, gumbel + logits + normalized_qvalues)
  return jnp.where(visit_counts == considered_visit, score, -jnp.inf)
