"""The library's selection rules on the rows of ONE node, as the walk
kernel (`pallas_walk`) computes them inside a Pallas program.

Each mirrors a rule of `action_selection` with a Q-transform of
`qtransforms` (named in its docstring), written under Triton's
constraints: rows are `[1, W]` blocks, W a power of two whose entries past
the number of actions A (`real` False) are masked here; reductions are
plain max / min / sum over the last axis. Only the order of a few
floating-point sums may differ from the generic rules.
"""
import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from mcts import hashing
from mcts import qtransforms
from mcts import rules


def tie_break_noise(key_ref, salt, width):
  """`hashing.uniform_from_key(derive_keys(key, salt), width)` `[1, width]`,
  from the key's words in `key_ref` `[W]`."""
  words = hashing.derive_words(key_ref[...], jnp.asarray(salt, jnp.uint32))
  return hashing.uniform_from_words(words, width)[None, :]


def first_argmax(score, blocked, num_actions):
  """The first index of the maximum of `score` `[1, W]` outside `blocked`,
  as `action_selection.masked_argmax` (a row with NaN: the last action):
  an int32 scalar."""
  score = jnp.where(blocked, -jnp.inf, score)
  index = jax.lax.broadcasted_iota(jnp.int32, score.shape, 1)
  best = jnp.max(score, axis=-1, keepdims=True)
  first = jnp.min(jnp.where(score == best, index, score.shape[-1]), axis=-1)
  return jnp.minimum(first, num_actions - 1)[0]


def puct_choice(rule: rules.Puct, r, node_visit, node_value, noise,
                invalid, real, num_actions):
  """`muzero_action_selection` on the rows `r` of one node, with `rule`'s
  `qtransforms.ByParentAndSiblings` or `ByMinMax`."""
  visit_counts = r["visits"]
  visited = visit_counts > 0
  pb_c = rule.pb_c_init + jnp.log(
      (node_visit + rule.pb_c_base + 1.0) / rule.pb_c_base)
  prior_probs = jnp.exp(r["logits"])
  policy_score = jnp.sqrt(node_visit.astype(jnp.float32)) * pb_c * (
      prior_probs) / (visit_counts + 1)
  qvalues = r["qvalues"]
  q = rule.qtransform
  if isinstance(q, qtransforms.ByParentAndSiblings):
    visited_or_node = jnp.where(visited, qvalues, node_value)
    low = jnp.minimum(node_value, jnp.min(visited_or_node, -1, keepdims=True))
    high = jnp.maximum(node_value, jnp.max(visited_or_node, -1,
                                           keepdims=True))
    completed = jnp.where(visited, qvalues, low)
    value_score = (completed - low) / jnp.maximum(high - low, q.epsilon)
  else:  # qtransforms.ByMinMax
    value_score = jnp.where(visited, qvalues, q.min_value)
    value_score = (value_score - q.min_value) / (q.max_value - q.min_value)
  score = value_score + policy_score + 1e-7 * noise
  return first_argmax(score, invalid | ~real, num_actions)


def completed_qvalues(q: qtransforms.CompletedByMixValue, r, raw_value,
                      real):
  """`qtransform_completed_by_mix_value` with `q`'s numbers on the rows `r`
  of one node: `[1, W]`."""
  qvalues, visit_counts = r["qvalues"], r["visits"]
  visited = visit_counts > 0
  prior_probs = jnp.maximum(jnp.finfo(jnp.float32).tiny,
                            jnp.exp(r["logits"]))
  total = jnp.sum(visit_counts, -1, keepdims=True)
  max_visits = jnp.max(visit_counts, -1, keepdims=True)
  value = raw_value
  if q.use_mixed_value:
    mass = jnp.sum(jnp.where(visited, prior_probs, 0.0), -1, keepdims=True)
    pi_q = jnp.sum(jnp.where(visited, prior_probs * qvalues, 0.0), -1,
                   keepdims=True)
    weighted_q = jnp.where(mass > 0, pi_q / mass, 0.0)
    total_f = total.astype(jnp.float32)
    value = (raw_value + total_f * weighted_q) / (total_f + 1)
  completed = jnp.where(visited, qvalues, value)
  if q.rescale_values:
    low = jnp.min(jnp.where(real, completed, jnp.inf), -1, keepdims=True)
    high = jnp.max(jnp.where(real, completed, -jnp.inf), -1, keepdims=True)
    completed = (completed - low) / jnp.maximum(high - low, q.epsilon)
  visit_scale = q.maxvisit_init + max_visits
  return visit_scale * q.value_scale * completed


def gumbel_root_choice(rule: rules.GumbelRoot, r, raw_value, ins, root_row,
                       real, num_actions):
  """`gumbel_muzero_root_action_selection` on the root's rows `r`."""
  completed = completed_qvalues(rule.qtransform, r, raw_value, real)
  visit_counts = r["visits"] - root_row("root_prior_visits", 0)
  num_valid = jnp.sum(1 - root_row("root_invalid", 1))
  num_considered = jnp.minimum(rule.max_num_considered_actions, num_valid)
  simulation = jnp.sum(visit_counts)
  table = ins["halving_table"]
  simulation = jnp.clip(simulation, 0, rule.num_simulations - 1)
  considered_visit = table[pl.ds(num_considered, 1), pl.ds(simulation, 1)]
  score = jnp.maximum(-1e9, root_row("root_gumbel", 0.0) + r["logits"]
                      + completed)
  score = jnp.where(visit_counts == considered_visit, score, -jnp.inf)
  invalid = root_row("root_invalid", 1) != 0
  return first_argmax(score, invalid | ~real, num_actions)


def gumbel_interior_choice(rule: rules.GumbelRoot, r, raw_value, node_visit,
                           real, num_actions):
  """`gumbel_muzero_interior_action_selection` on the rows `r` of one
  node."""
  completed = completed_qvalues(rule.qtransform, r, raw_value, real)
  logits = r["logits"] + completed
  exp = jnp.exp(logits - jnp.max(jnp.where(real, logits, -jnp.inf), -1,
                                 keepdims=True))
  exp = jnp.where(real, exp, 0.0)
  improved_policy = exp / jnp.sum(exp, -1, keepdims=True)
  to_argmax = improved_policy - r["visits"] / node_visit
  return first_argmax(to_argmax, (improved_policy <= 0) | ~real,
                      num_actions)
