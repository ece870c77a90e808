"""Gumbel MuZero over chance nodes (`mcts.gumbel_stochastic_muzero_policy`):
with one outcome of probability 1 it is `gumbel_muzero_policy` on the
equivalent deterministic model, node for node; sequential halving's
schedule at the root; the tree's invariants; determinism, jit/vmap and
float64."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from mcts import seq_halving
from tests.mcts import test_stochastic

# The tests run every JAX computation inside `jit` and read the results as
# numpy arrays (see test_stochastic.py).

NUM_SIMULATIONS = 40


def stochastic_policy(num_simulations, max_depth=None, **kwargs):
  """The Gumbel stochastic policy on `test_stochastic`'s table model:
  `(params, roots [B], invalid [B, A], key) -> PolicyOutput`."""
  decision_fn, chance_fn = test_stochastic.table_fns(mcts)

  def policy(params, roots, invalid_actions, rng_key):
    root = mcts.RootFnOutput(prior_logits=params["action_logits"][roots],
                             value=params["value"][roots], embedding=roots)
    return mcts.gumbel_stochastic_muzero_policy(
        params, rng_key, root, decision_fn, chance_fn,
        num_simulations=num_simulations, invalid_actions=invalid_actions,
        max_depth=max_depth, **kwargs)

  return policy


def deterministic_policy(recurrent_fn, num_simulations, max_depth=None,
                         **kwargs):
  """`gumbel_muzero_policy` from the same roots as `stochastic_policy`."""
  def policy(params, roots, invalid_actions, rng_key):
    root = mcts.RootFnOutput(prior_logits=params["action_logits"][roots],
                             value=params["value"][roots], embedding=roots)
    return mcts.gumbel_muzero_policy(
        params, rng_key, root, recurrent_fn,
        num_simulations=num_simulations, invalid_actions=invalid_actions,
        max_depth=max_depth, **kwargs)

  return policy


def afterstate_recurrent_fn(params, rng_key, action, node):
  """The one-outcome table model (`C = 1`) as a deterministic model whose
  afterstates are nodes of their own: a state `s < S` steps by `a` to the
  afterstate node `S + u` (reward 0, discount 1, the afterstate's value,
  one valid action: 0, the only outcome); an afterstate node steps by 0 to
  the state `s' = next_state[u, 0]` with its reward, discount, logits and
  value. Its tree is the stochastic search's, level for level."""
  del rng_key
  num_states = params["value"].shape[0]
  num_actions = params["action_logits"].shape[-1]
  is_state = node < num_states
  state = jnp.minimum(node, num_states - 1)
  afterstate = params["next_afterstate"][state, action]
  next_state = params["next_state"][jnp.maximum(node - num_states, 0), 0]
  only_first = jnp.arange(num_actions) > 0
  logits = params["action_logits"][next_state]
  lowest = jnp.finfo(logits.dtype).min
  output = mcts.RecurrentFnOutput(
      reward=jnp.where(is_state, 0.0, params["reward"][next_state]),
      discount=jnp.where(is_state, 1.0, params["discount"][next_state]),
      prior_logits=jnp.where(is_state[:, None],
                             jnp.where(only_first, lowest, 0.0), logits),
      value=jnp.where(is_state, params["afterstate_value"][afterstate],
                      params["value"][next_state]),
      invalid_actions=is_state[:, None] & only_first)
  return output, jnp.where(is_state, num_states + afterstate, next_state)


def plain_recurrent_fn(params, rng_key, action, state):
  """The one-outcome table model as a plain deterministic model:
  `s -> s' = next_state[next_afterstate[s, a], 0]`."""
  del rng_key
  afterstate = params["next_afterstate"][state, action]
  next_state = params["next_state"][afterstate, 0]
  return mcts.RecurrentFnOutput(
      reward=params["reward"][next_state],
      discount=params["discount"][next_state],
      prior_logits=params["action_logits"][next_state],
      value=params["value"][next_state]), next_state


def one_outcome_tables(seed, num_actions, num_outcomes=1,
                       discount="mixed"):
  """`test_stochastic`'s random tables whose afterstates have one possible
  outcome, the first (the others of probability 0)."""
  params = test_stochastic.random_tables(
      seed, num_actions=num_actions, num_outcomes=num_outcomes,
      discount=discount)
  params["chance_logits"] = jnp.where(
      jnp.arange(num_outcomes) == 0, 0.0, test_stochastic.IMPOSSIBLE
  ) + jnp.zeros_like(params["chance_logits"])
  return params


def run_both(ours, theirs, params, invalid, seed):
  roots = np.arange(invalid.shape[0], dtype=np.int32)
  key = jax.random.PRNGKey(seed)
  return jax.device_get((jax.jit(ours)(params, roots, invalid, key),
                         jax.jit(theirs)(params, roots, invalid, key)))


def assert_same_decisions(a, b, rtol=1e-5):
  """Same action, root visits and policy target (the decision
  statistics)."""
  np.testing.assert_array_equal(a.action, b.action)
  np.testing.assert_array_equal(a.search_tree.children_visits[:, 0],
                                b.search_tree.children_visits[:, 0])
  np.testing.assert_allclose(a.action_weights, b.action_weights, rtol=rtol,
                             atol=1e-6)


def assert_same_trees(ta, tb, rtol=1e-5, rows=None):
  """The same trees; with `rows` (bool `[B, N]`), the children's indices
  and prior logits of those nodes only."""
  for field in ("node_visits", "parents", "action_from_parent",
                "children_visits"):
    np.testing.assert_array_equal(getattr(ta, field), getattr(tb, field),
                                  err_msg=field)
  for field in ("node_values", "raw_values", "node_rewards", "node_discounts",
                "children_qvalues"):
    np.testing.assert_allclose(getattr(ta, field), getattr(tb, field),
                               rtol=rtol, atol=1e-5, err_msg=field)
  pick = (lambda x: np.asarray(x)) if rows is None else (
      lambda x: np.asarray(x)[rows])
  np.testing.assert_array_equal(pick(ta.children_index),
                                pick(tb.children_index))
  np.testing.assert_allclose(pick(ta.children_prior_logits),
                             pick(tb.children_prior_logits), rtol=rtol,
                             atol=1e-5)


# ---------------------------------------------------------------------------
# One outcome of probability 1: Gumbel MuZero on the deterministic model.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("num_actions,num_outcomes,k,seed", [
    (5, 1, 16, 0), (7, 1, 3, 1),
    pytest.param(2, 5, 2, 9, marks=pytest.mark.slow)])
def test_one_outcome_is_gumbel_muzero_with_afterstate_nodes(
    num_actions, num_outcomes, k, seed):
  """With one possible outcome the search is `gumbel_muzero_policy` on the
  model whose afterstates are nodes with one action: the same Gumbel noise
  (same key), the same tree node for node (each chance node is the
  afterstate node, reward 0 and discount 1 on the edge into it, the
  environment's reward and discount on the edge out), the same action and
  policy target. Discounts mix 0, 0.5, 0.9, 1 and -1; k < A scores the
  considered actions only. With `C > A` outcomes, all but the first of
  probability 0, decision nodes have `C - A` padding children, which must
  change nothing either."""
  params = one_outcome_tables(seed, num_actions, num_outcomes)
  invalid = test_stochastic.random_invalid(seed, 4, num_actions)
  kwargs = dict(max_num_considered_actions=k)
  ours, theirs = run_both(
      stochastic_policy(NUM_SIMULATIONS, **kwargs),
      deterministic_policy(afterstate_recurrent_fn, NUM_SIMULATIONS,
                           **kwargs), params, invalid, seed)
  assert_same_decisions(ours, theirs)
  num_states = params["value"].shape[0]
  is_decision = np.asarray(ours.search_tree.embeddings.is_decision_node)
  np.testing.assert_array_equal(is_decision,
                                theirs.search_tree.embeddings < num_states)
  # A chance node's impossible outcomes are valid children of probability
  # 0; the afterstate node's other actions are invalid.
  assert_same_trees(ours.search_tree, theirs.search_tree,
                    rows=is_decision if num_outcomes > 1 else None)


@pytest.mark.parametrize("num_actions,k,seed", [(4, 16, 2), (6, 2, 3)])
def test_one_outcome_one_ply_is_gumbel_muzero_on_the_plain_model(
    num_actions, k, seed):
  """With `C = 1` and afterstate values that are exact, `Q(s, a) = r + d
  v(s')`, a search of one ply (max_depth 2: decision, chance, decision
  leaf) gives the root the statistics of `gumbel_muzero_policy` on the
  plain deterministic model `s -> s'` with max_depth 1: every visit of an
  action returns `r + d v(s')` in both, so the same visits, Q-values,
  action and policy target."""
  params = one_outcome_tables(seed, num_actions)
  next_state = params["next_state"][:, 0]
  params["afterstate_value"] = (params["reward"][next_state]
                                + params["discount"][next_state]
                                * params["value"][next_state])
  invalid = test_stochastic.random_invalid(seed, 4, num_actions)
  kwargs = dict(max_num_considered_actions=k)
  ours, theirs = run_both(
      stochastic_policy(NUM_SIMULATIONS, max_depth=2, **kwargs),
      deterministic_policy(plain_recurrent_fn, NUM_SIMULATIONS, max_depth=1,
                           **kwargs), params, invalid, seed)
  assert_same_decisions(ours, theirs)
  np.testing.assert_allclose(ours.search_tree.summary().qvalues,
                             theirs.search_tree.summary().qvalues,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ours.search_tree.node_values[:, 0],
                             theirs.search_tree.node_values[:, 0],
                             rtol=1e-5, atol=1e-5)


def test_one_outcome_float64():
  """The same equivalence with float64 models: float64 trees, equal to
  `gumbel_muzero_policy`'s up to float64 rounding."""
  with jax.enable_x64(True):
    params = {k: v.astype(jnp.float64) if v.dtype == jnp.float32 else v
              for k, v in one_outcome_tables(4, 5).items()}
    invalid = test_stochastic.random_invalid(4, 4, 5)
    ours, theirs = run_both(
        stochastic_policy(NUM_SIMULATIONS, max_num_considered_actions=4),
        deterministic_policy(afterstate_recurrent_fn, NUM_SIMULATIONS,
                             max_num_considered_actions=4),
        params, invalid, 4)
  tree = ours.search_tree
  for field in ("node_values", "children_qvalues", "children_prior_logits"):
    assert getattr(tree, field).dtype == np.float64, field
  assert ours.action_weights.dtype == np.float64
  assert_same_decisions(ours, theirs, rtol=1e-12)
  assert_same_trees(tree, theirs.search_tree, rtol=1e-12)


# ---------------------------------------------------------------------------
# Invariants with several outcomes.
# ---------------------------------------------------------------------------

def root_action_of_each_simulation(tree):
  """`[B, n]`: the root action simulation `i` took, read from the node it
  added (node `i + 1`, in a search without a depth limit) by climbing to
  the root."""
  parents = np.asarray(tree.parents)
  actions = np.asarray(tree.action_from_parent)
  out = np.zeros((parents.shape[0], parents.shape[1] - 1), np.int64)
  for b in range(parents.shape[0]):
    for i in range(parents.shape[1] - 1):
      node = i + 1
      while parents[b, node] != 0:
        node = parents[b, node]
      out[b, i] = actions[b, node]
  return out


def considered_sets(params, roots, invalid, key, k):
  """The root actions Gumbel-Top-k considers, per tree: the
  min(k, valid) valid actions with the largest g(a) + logits(a), the noise
  drawn as the policy draws it."""
  logits = np.asarray(params["action_logits"])[roots]
  _, gumbel_key = jax.random.split(key)
  gumbel = np.asarray(jax.jit(functools.partial(
      jax.random.gumbel, shape=logits.shape, dtype=logits.dtype))(gumbel_key))
  score = np.where(invalid != 0, -np.inf, gumbel + logits)
  sets = []
  for b in range(len(roots)):
    num = min(k, int(np.sum(invalid[b] == 0)))
    sets.append(set(np.argsort(-score[b])[:num].tolist()))
  return sets


@pytest.mark.parametrize("num_actions,num_outcomes,k,seed", [
    (3, 5, 16, 5),  # C > A: decision nodes have padding children.
    (6, 2, 4, 6),   # C < A, k < A.
])
def test_invariants(num_actions, num_outcomes, k, seed):
  """Root visits follow sequential halving's schedule simulation by
  simulation (`seq_halving.considered_visits_sequence` for min(k, valid
  actions)); only the considered, valid root actions are visited; the
  action is a most visited one among them; decision and chance nodes
  alternate with consistent visits (`test_stochastic.check_tree`); outcomes
  stay below C; the policy target is a distribution over valid actions."""
  params = test_stochastic.random_tables(
      seed, num_actions=num_actions, num_outcomes=num_outcomes,
      discount="mixed")
  batch = 6
  roots = np.arange(batch, dtype=np.int32)
  invalid = test_stochastic.random_invalid(seed, batch, num_actions)
  key = jax.random.PRNGKey(seed)
  out = jax.device_get(jax.jit(stochastic_policy(
      NUM_SIMULATIONS, max_num_considered_actions=k))(
          params, roots, invalid, key))
  tree = out.search_tree
  test_stochastic.check_tree(tree, num_simulations=NUM_SIMULATIONS,
                             num_actions=num_actions,
                             num_outcomes=num_outcomes,
                             invalid_actions=invalid)
  is_decision = np.asarray(tree.embeddings.is_decision_node)
  parents = np.maximum(np.asarray(tree.parents), 0)
  from_chance = ~np.take_along_axis(is_decision, parents, axis=1)
  from_chance[:, 0] = False
  assert np.all(np.asarray(tree.action_from_parent)[from_chance]
                < num_outcomes)

  considered = considered_sets(params, roots, invalid, key, k)
  root_actions = root_action_of_each_simulation(tree)
  root_visits = np.asarray(tree.children_visits[:, 0])
  for b in range(batch):
    num_valid = int(np.sum(invalid[b] == 0))
    schedule = seq_halving.considered_visits_sequence(min(k, num_valid),
                                                      NUM_SIMULATIONS)
    counts = np.zeros(num_actions, np.int64)
    for i, a in enumerate(root_actions[b]):
      assert counts[a] == schedule[i], (b, i, counts, schedule)
      counts[a] += 1
    np.testing.assert_array_equal(counts, root_visits[b])
    assert set(np.nonzero(counts)[0].tolist()) <= considered[b]
    action = int(out.action[b])
    assert action in considered[b] and invalid[b, action] == 0
    assert counts[action] == counts.max()
  np.testing.assert_allclose(out.action_weights.sum(-1), 1.0, rtol=1e-6)
  assert np.all(out.action_weights[invalid != 0] == 0)


def test_a_users_qtransform_reads_the_whole_narrowed_tree():
  """A Q-transform that is not the library's gets the whole tree (its
  decision nodes' first A children), not a one-node view, and all root
  actions scored: with the library's numbers behind it, the same search
  as the library's Q-transform gives (C > A, k < A)."""
  params = test_stochastic.random_tables(7, num_actions=5, num_outcomes=8,
                                         discount="gamma")
  invalid = test_stochastic.random_invalid(7, 4, 5)

  def users_qtransform(tree, node_index):
    return mcts.qtransform_completed_by_mix_value(tree, node_index)

  kwargs = dict(max_num_considered_actions=3)
  ours, theirs = run_both(
      stochastic_policy(NUM_SIMULATIONS, qtransform=users_qtransform,
                        **kwargs),
      stochastic_policy(NUM_SIMULATIONS, **kwargs), params, invalid, 7)
  assert_same_decisions(ours, theirs)
  assert_same_trees(ours.search_tree, theirs.search_tree)


def test_deterministic_for_a_key_and_the_same_under_vmap():
  """The same key gives the same search; the batch split over `vmap`
  (one key per slice) gives each slice's direct search."""
  num_actions, num_outcomes, n = 4, 3, 24
  params = test_stochastic.random_tables(8, num_actions=num_actions,
                                         num_outcomes=num_outcomes,
                                         discount="mixed")
  roots = np.arange(6, dtype=np.int32).reshape(3, 2)
  invalid = test_stochastic.random_invalid(8, 6, num_actions).reshape(
      3, 2, num_actions)
  keys = jax.random.split(jax.random.PRNGKey(8), 3)
  policy = stochastic_policy(n, max_num_considered_actions=2)
  direct = jax.jit(policy)
  slices = [jax.device_get(direct(params, roots[i], invalid[i], keys[i]))
            for i in range(3)]
  again = jax.device_get(direct(params, roots[0], invalid[0], keys[0]))
  assert_same_decisions(again, slices[0], rtol=0)
  assert_same_trees(again.search_tree, slices[0].search_tree, rtol=0)
  mapped = jax.device_get(jax.jit(jax.vmap(
      policy, in_axes=(None, 0, 0, 0)))(params, roots, invalid, keys))
  for i, direct_out in enumerate(slices):
    mapped_out = jax.tree.map(lambda x: x[i], mapped)  # pylint: disable=cell-var-from-loop
    assert_same_decisions(mapped_out, direct_out)
    assert_same_trees(mapped_out.search_tree, direct_out.search_tree)


def test_bad_arguments_are_named():
  params = test_stochastic.random_tables(0, num_actions=3, num_outcomes=2)
  policy = stochastic_policy(4, max_num_considered_actions=0)
  with pytest.raises(ValueError, match="max_num_considered_actions"):
    jax.eval_shape(policy, params, np.arange(2, dtype=np.int32),
                   np.zeros((2, 3), np.float32), jax.random.PRNGKey(0))
