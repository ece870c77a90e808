"""Stochastic MuZero: exact expectimax on a dice game, agreement with mctx,
shapes, jit/vmap and the tree's invariants."""
import functools

import jax
import jax.numpy as jnp
import mctx
import numpy as np
import pytest

import mcts

# ---------------------------------------------------------------------------
# A dice game with exact expectimax values.
#
# The state is a running total t in 0..LIMIT. Each turn the player either
# STOPs (the episode ends with reward t) or ROLLs a die with faces 1..FACES,
# uniform, adding the face to t; a total above LIMIT busts (reward 0, end).
# As a Stochastic MuZero model: the decision node chooses ROLL or STOP
# (A = 2); the afterstate's chance node has C = FACES = 3 outcomes (so
# C > A). A STOP afterstate has one possible outcome (the others have
# probability 0) leading to a terminal state with reward t; a ROLL afterstate
# has the die's uniform outcomes. Terminal states (discount 0 into them) stay
# terminal with reward 0.
# ---------------------------------------------------------------------------

LIMIT, FACES = 10, 3
ROLL, STOP = 0, 1
NUM_ACTIONS = 2
IMPOSSIBLE = -1e9  # Logit of an outcome with probability 0.


def expectimax():
  """Exact values: V[t] = max_a Q[t, a], Q[t, STOP] = t,
  Q[t, ROLL] = mean over faces d of (V[t + d] if t + d <= LIMIT else 0)."""
  values = np.zeros(LIMIT + 1)
  qvalues = np.zeros((LIMIT + 1, NUM_ACTIONS))
  for t in range(LIMIT, -1, -1):
    qvalues[t, STOP] = t
    qvalues[t, ROLL] = np.mean([values[t + d] if t + d <= LIMIT else 0.0
                                for d in range(1, FACES + 1)])
    values[t] = qvalues[t].max()
  return values, qvalues


V_STAR, Q_STAR = expectimax()
# Roots with clear optimal decisions: ROLL at 2, 5, 6, 7 and STOP at 8, 9.
# At 8 the two non-bust faces look better than stopping (9, 10 > 8); only
# averaging over the bust outcome shows STOP is optimal.
DICE_ROOTS = np.array([2, 5, 6, 7, 8, 9], np.int32)


def test_expectimax_by_hand():
  np.testing.assert_allclose(V_STAR[LIMIT - 3:], [9.0, 8.0, 9.0, 10.0])
  np.testing.assert_allclose(Q_STAR[7], [9.0, 7.0])
  np.testing.assert_allclose(Q_STAR[8], [19.0 / 3, 8.0])
  np.testing.assert_array_equal(Q_STAR[DICE_ROOTS].argmax(1),
                                [ROLL] * 4 + [STOP] * 2)


def dice_params(prior: str = "uniform"):
  """The model's tables: the exact values V* (states) and Q* (afterstates);
  prior logits "uniform" or "optimal" (the optimal action's)."""
  logits = np.zeros_like(Q_STAR)
  if prior == "optimal":
    logits = np.where(np.arange(NUM_ACTIONS) == Q_STAR.argmax(1)[:, None],
                      0.0, -30.0)
  return dict(state_value=jnp.asarray(V_STAR, jnp.float32),
              after_value=jnp.asarray(Q_STAR, jnp.float32),
              logits=jnp.asarray(logits, jnp.float32))


def dice_decision_fn(params, rng_key, action, state):
  """State {total, done} -> afterstate (total, kind): kind 0 roll, 1 stop,
  2 already terminal."""
  del rng_key
  total, done = state["total"], state["done"]
  kind = jnp.where(done, 2, jnp.where(action == STOP, 1, 0))
  one_outcome = jnp.array([0.0] + [IMPOSSIBLE] * (FACES - 1))
  chance_logits = jnp.where((kind > 0)[:, None], one_outcome,
                            jnp.zeros(FACES))
  value = jnp.where(done, 0.0, params["after_value"][total, action])
  return mcts.DecisionRecurrentFnOutput(
      chance_logits=chance_logits, afterstate_value=value), (total, kind)


def dice_chance_fn(params, rng_key, outcome, afterstate):
  del rng_key
  total, kind = afterstate
  new_total = total + outcome + 1
  done = (kind > 0) | (new_total > LIMIT)
  next_total = jnp.where(done, total, new_total)
  output = mcts.ChanceRecurrentFnOutput(
      action_logits=params["logits"][next_total],
      value=jnp.where(done, 0.0, params["state_value"][next_total]),
      reward=jnp.where(kind == 1, total, 0).astype(jnp.float32),
      discount=jnp.where(done, 0.0, 1.0))
  return output, {"total": next_total, "done": done}


# The tests run every JAX computation inside `jit` and read the results as
# numpy arrays: an op dispatched outside `jit` compiles on its own, which
# costs more than these searches on a busy CPU.


@functools.partial(jax.jit, static_argnames=("num_simulations", "max_depth"))
def _dice_search(params, totals, *, num_simulations, max_depth=None):
  state = {"total": totals, "done": jnp.zeros(totals.shape, bool)}
  root = mcts.RootFnOutput(prior_logits=params["logits"][totals],
                           value=params["state_value"][totals],
                           embedding=state)
  out = mcts.stochastic_muzero_policy(
      params, jax.random.PRNGKey(0), root, dice_decision_fn, dice_chance_fn,
      num_simulations=num_simulations, max_depth=max_depth,
      dirichlet_fraction=0.0)
  return out, out.search_tree.summary()


def dice_search(params, totals, **kwargs):
  """(PolicyOutput, root SearchSummary), as numpy arrays."""
  return jax.device_get(_dice_search(params, totals, **kwargs))


# ---------------------------------------------------------------------------
# Tree invariants.
# ---------------------------------------------------------------------------

def check_tree(tree, *, num_simulations, num_actions, num_outcomes,
               invalid_actions=None):
  """Structural invariants of a search without a depth cutoff."""
  visits = np.asarray(tree.node_visits)
  parents = np.asarray(tree.parents)
  actions = np.asarray(tree.action_from_parent)
  is_decision = np.asarray(tree.embeddings.is_decision_node)
  rewards = np.asarray(tree.node_rewards)
  discounts = np.asarray(tree.node_discounts)
  root_children = np.asarray(tree.children_visits[:, 0])
  assert tree.children_visits.shape[-1] == num_actions
  np.testing.assert_array_equal(visits[:, 0], num_simulations + 1)
  np.testing.assert_array_equal(root_children.sum(-1), num_simulations)
  assert np.all(visits > 0)  # Every simulation adds a node.
  assert np.all(is_decision[:, 0])
  for b in range(visits.shape[0]):
    children_sum = np.zeros(visits.shape[1], np.int64)
    for n in range(1, visits.shape[1]):
      p = parents[b, n]
      assert 0 <= p < n
      children_sum[p] += visits[b, n]
      assert is_decision[b, n] != is_decision[b, p]
      if is_decision[b, p]:   # decision -> chance: reward 0, discount 1.
        assert actions[b, n] < num_actions
        assert rewards[b, n] == 0 and discounts[b, n] == 1
      else:                   # chance -> decision.
        assert actions[b, n] < num_outcomes
    # A node's visits: its own evaluation plus its children's.
    np.testing.assert_array_equal(visits[b], 1 + children_sum)
  if invalid_actions is not None:
    assert np.all(root_children[np.asarray(invalid_actions) != 0] == 0)


def chance_children_visits(tree, node_count):
  """`[B, N, C]` visits of the outcomes of each node, from the per-node
  arrays (the returned tree keeps only the first A children of a node)."""
  visits = np.asarray(tree.node_visits)
  parents = np.asarray(tree.parents)
  actions = np.asarray(tree.action_from_parent)
  out = np.zeros(visits.shape + (node_count,), np.int64)
  for b in range(visits.shape[0]):
    for n in range(1, visits.shape[1]):
      if visits[b, n] > 0:
        out[b, parents[b, n], actions[b, n]] += visits[b, n]
  return out


# ---------------------------------------------------------------------------
# The dice game.
# ---------------------------------------------------------------------------

# One compilation serves every dice search without a depth limit.
DICE_SIMULATIONS = 1000


def test_dice_search_finds_expectimax_decisions():
  """The true model (exact values, true rewards, uniform outcomes) and
  uniform priors: the most visited and the highest-valued root actions are
  expectimax's optimal ones. Below the root, pUCT also tries the worse
  actions, whose returns enter the means; with 300 simulations that still
  makes STOP the most visited action at 7, with 1000 no longer.

  (With value 0 at every leaf, mean backups and pUCT need far more
  simulations than a test affords: a ROLL that first returns 0 is seldom
  revisited. mctx's search, which ours matches node for node, does the
  same.)"""
  out, summary = dice_search(dice_params(), DICE_ROOTS,
                             num_simulations=DICE_SIMULATIONS)
  optimal = Q_STAR[DICE_ROOTS].argmax(1)
  np.testing.assert_array_equal(np.argmax(summary.visit_counts, 1), optimal)
  np.testing.assert_array_equal(np.argmax(summary.qvalues, 1), optimal)
  np.testing.assert_allclose(out.action_weights.sum(1), 1.0, rtol=1e-6)
  # STOP's chance node has one possible outcome: Q(STOP) is exactly t.
  np.testing.assert_allclose(summary.qvalues[:, STOP], DICE_ROOTS,
                             rtol=1e-6)
  check_tree(out.search_tree, num_simulations=DICE_SIMULATIONS,
             num_actions=NUM_ACTIONS, num_outcomes=FACES)


def test_dice_root_value_with_exact_values_and_optimal_policy():
  """Exact leaf values and the optimal policy as prior: every simulation
  follows optimal actions, and chance nodes visit the die's faces in turn,
  so the root value is the expectimax value (exactly where STOP is optimal;
  up to the last unequal round of faces at each chance node otherwise)."""
  out, summary = dice_search(dice_params("optimal"), DICE_ROOTS,
                             num_simulations=DICE_SIMULATIONS)
  optimal = Q_STAR[DICE_ROOTS].argmax(1)
  visits = np.asarray(summary.visit_counts)
  np.testing.assert_array_equal(visits[np.arange(len(optimal)), optimal],
                                DICE_SIMULATIONS)
  np.testing.assert_allclose(summary.value, V_STAR[DICE_ROOTS], atol=0.01)
  stops = optimal == STOP
  np.testing.assert_allclose(np.asarray(summary.value)[stops],
                             V_STAR[DICE_ROOTS][stops], rtol=1e-6)
  # At the afterstates of a roll (uniform outcomes), the faces' visits
  # differ by at most one.
  tree = out.search_tree
  outcomes = chance_children_visits(tree, FACES)
  _, kind = tree.embeddings.afterstate_embedding
  rolls = ~tree.embeddings.is_decision_node & (kind == 0)
  assert np.sum(rolls) > 10
  for b, n in zip(*np.nonzero(rolls)):
    assert np.ptp(outcomes[b, n]) <= 1


def test_dice_one_ply_backup_is_exact():
  """max_depth=2 (decision -> chance -> decision leaf) with exact values:
  Q(root, a) is the visit-weighted mean of the afterstate's value and of
  r + discount * V*(s') over the outcomes, each s' re-evaluated (not
  expanded) at the depth limit; it equals Q*(a) when the faces' visits are
  equal."""
  out, summary = dice_search(dice_params(), DICE_ROOTS,
                             num_simulations=40, max_depth=2)
  tree = out.search_tree
  qvalues = summary.qvalues
  outcomes = chance_children_visits(tree, FACES)
  balanced_rolls = 0
  for b, t in enumerate(DICE_ROOTS):
    for a in range(NUM_ACTIONS):
      node = int(tree.children_index[b, 0, a])
      if node < 0:
        continue
      counts = outcomes[b, node]
      if a == STOP:
        returns = np.array([t, 0.0, 0.0])  # Reward t, then terminal.
        assert counts[1:].sum() == 0
      else:
        returns = np.array([V_STAR[t + d] if t + d <= LIMIT else 0.0
                            for d in range(1, FACES + 1)])
      expected = (Q_STAR[t, a] + counts @ returns) / (1 + counts.sum())
      np.testing.assert_allclose(qvalues[b, a], expected, rtol=1e-5)
      if np.ptp(counts) == 0:
        np.testing.assert_allclose(qvalues[b, a], Q_STAR[t, a], rtol=1e-5)
        balanced_rolls += a == ROLL
      assert np.ptp(counts) <= (1 if a == ROLL else counts.sum())
  assert balanced_rolls > 0


# ---------------------------------------------------------------------------
# A random table-driven model, for mctx and the shapes.
# ---------------------------------------------------------------------------

def random_tables(seed, *, num_actions, num_outcomes, discount="gamma",
                  num_states=60, num_afterstates=60):
  """Tables of a random model: state s --a--> afterstate u --c--> state s'.
  `reward[s']` and `discount[s']` are on the edge into s'."""
  rng = np.random.default_rng(seed)
  s, u, a, c = num_states, num_afterstates, num_actions, num_outcomes
  if discount == "gamma":
    discounts = np.full(s, 0.9)
  else:
    discounts = rng.choice([0.0, 0.5, 0.9, 1.0, -1.0], s)
  tables = dict(
      next_afterstate=rng.integers(0, u, (s, a)),
      chance_logits=rng.normal(size=(u, c)),
      afterstate_value=rng.normal(size=u),
      next_state=rng.integers(0, s, (u, c)),
      action_logits=rng.normal(size=(s, a)),
      value=rng.normal(size=s),
      reward=rng.normal(0.0, 0.5, size=s),
      discount=discounts)
  return {k: jnp.asarray(v, jnp.int32 if v.dtype.kind == "i" else
                         jnp.float32) for k, v in tables.items()}


def table_fns(module, calls=None):
  """(decision_fn, chance_fn) returning `module`'s output types. The
  afterstate embedding is structured differently from the state's. With a
  `calls` dict, each call that runs adds 1 to `calls["decision"]` or
  `calls["chance"]`."""

  def count(name):
    if calls is not None:
      jax.debug.callback(lambda: calls.__setitem__(name, calls[name] + 1))

  def decision_fn(params, rng_key, action, state):
    del rng_key
    count("decision")
    u = params["next_afterstate"][state, action]
    output = module.DecisionRecurrentFnOutput(
        chance_logits=params["chance_logits"][u],
        afterstate_value=params["afterstate_value"][u])
    return output, {"id": u, "features": jnp.stack(
        [u, -u], axis=-1).astype(jnp.float32)}

  def chance_fn(params, rng_key, outcome, afterstate):
    del rng_key
    count("chance")
    s = params["next_state"][afterstate["id"], outcome]
    output = module.ChanceRecurrentFnOutput(
        action_logits=params["action_logits"][s], value=params["value"][s],
        reward=params["reward"][s], discount=params["discount"][s])
    return output, s

  return decision_fn, chance_fn


def table_policy(module, num_simulations, max_depth=None, calls=None,
                 **kwargs):
  """`module`'s policy on the table model, noise off, also returning the
  root summary and the `[B, N, A]` children values."""
  decision_fn, chance_fn = table_fns(module, calls)

  def policy(params, roots, invalid_actions, rng_key):
    root = module.RootFnOutput(prior_logits=params["action_logits"][roots],
                               value=params["value"][roots], embedding=roots)
    out = module.stochastic_muzero_policy(
        params, rng_key, root, decision_fn, chance_fn,
        num_simulations=num_simulations, invalid_actions=invalid_actions,
        max_depth=max_depth, dirichlet_fraction=0.0, **kwargs)
    return out, out.search_tree.summary(), out.search_tree.children_values

  return policy


def random_invalid(seed, batch_size, num_actions):
  rng = np.random.default_rng(seed)
  invalid = rng.random((batch_size, num_actions)) < 0.3
  invalid[np.arange(batch_size), rng.integers(0, num_actions,
                                              batch_size)] = False
  return invalid.astype(np.float32)


def assert_matches_mctx(num_actions, num_outcomes, num_simulations,
                        max_depth=None, seeds=(0, 1), **kwargs):
  ours = jax.jit(table_policy(mcts, num_simulations, max_depth, **kwargs))
  mctx_kwargs = {k: v for k, v in kwargs.items() if k != "skip_unused_model"}
  theirs = jax.jit(table_policy(mctx, num_simulations, max_depth,
                                **mctx_kwargs))
  roots = np.arange(4, dtype=np.int32)
  for seed, discount in zip(seeds, ["gamma", "mixed"]):
    params = random_tables(seed, num_actions=num_actions,
                           num_outcomes=num_outcomes, discount=discount)
    invalid = random_invalid(seed, 4, num_actions)
    key = jax.random.PRNGKey(seed)
    a, summary_a, values_a = jax.device_get(ours(params, roots, invalid,
                                                 key))
    b, summary_b, values_b = jax.device_get(theirs(params, roots, invalid,
                                                   key))
    np.testing.assert_allclose(a.action_weights, b.action_weights, atol=1e-6)
    np.testing.assert_array_equal(a.action, b.action)
    ta, tb = a.search_tree, b.search_tree
    for field in ("node_visits", "parents"):
      np.testing.assert_array_equal(getattr(ta, field), getattr(tb, field),
                                    err_msg=field)
    np.testing.assert_allclose(ta.node_values, tb.node_values, rtol=1e-5,
                               atol=1e-5)
    is_decision = np.asarray(ta.embeddings.is_decision_node)
    np.testing.assert_array_equal(is_decision, tb.embeddings.is_decision_node)
    # mctx numbers the outcome c of a chance node A + c; we number it c.
    parents = np.maximum(np.asarray(ta.parents), 0)
    from_chance = ~np.take_along_axis(is_decision, parents, axis=1)
    from_chance[:, 0] = False
    np.testing.assert_array_equal(
        np.asarray(ta.action_from_parent) + num_actions * from_chance,
        tb.action_from_parent)
    # Both return the first A children of a node: the actions of a decision
    # node (mctx's chance nodes keep their outcomes after the A actions).
    np.testing.assert_allclose(values_a[is_decision], values_b[is_decision],
                               rtol=1e-5, atol=1e-5)
    for field in ("children_visits", "children_index"):
      np.testing.assert_array_equal(getattr(ta, field)[is_decision],
                                    getattr(tb, field)[is_decision],
                                    err_msg=field)
    np.testing.assert_allclose(summary_a.qvalues, summary_b.qvalues,
                               rtol=1e-5, atol=1e-5)
    if max_depth is None:
      check_tree(ta, num_simulations=num_simulations,
                 num_actions=num_actions, num_outcomes=num_outcomes,
                 invalid_actions=invalid)


def test_matches_mctx_more_outcomes_than_actions():
  """Same inputs, noise off: the same tree as mctx's, node for node."""
  assert_matches_mctx(num_actions=3, num_outcomes=5, num_simulations=48)


@pytest.mark.slow
@pytest.mark.parametrize("num_actions,num_outcomes,max_depth,kwargs", [
    (5, 2, None, {}),
    (3, 3, 3, {}),
    (3, 5, None, {"skip_unused_model": False}),
    (4, 2, None, {"temperature": 0.0, "pb_c_init": 2.0}),
])
def test_matches_mctx_slow(num_actions, num_outcomes, max_depth, kwargs):
  assert_matches_mctx(num_actions, num_outcomes, 40, max_depth=max_depth,
                      seeds=(2, 3), **kwargs)


def test_fewer_outcomes_than_actions_jit_vmap_and_model_calls():
  """C < A; the same searches batched directly and through vmap. Directly,
  a model runs in a simulation only if some tree of the batch expands a
  node of its kind (plus one call each for the shape probes, whose results
  are unused)."""
  num_actions, num_outcomes, n = 4, 2, 24
  params = random_tables(5, num_actions=num_actions,
                         num_outcomes=num_outcomes, discount="mixed")
  roots = np.arange(6, dtype=np.int32)
  invalid = random_invalid(5, 6, num_actions)
  key = jax.random.PRNGKey(0)
  calls = {"decision": 0, "chance": 0}
  counted = table_policy(mcts, n, calls=calls, temperature=0.0)
  direct, _, _ = jax.device_get(jax.block_until_ready(
      jax.jit(counted)(params, roots, invalid, key)))
  tree = direct.search_tree
  assert direct.action_weights.shape == (6, num_actions)
  assert tree.children_visits.shape == (6, n + 1, num_actions)
  check_tree(tree, num_simulations=n, num_actions=num_actions,
             num_outcomes=num_outcomes, invalid_actions=invalid)
  # Simulation i adds node i + 1 to every tree.
  parents = tree.parents[:, 1:]
  from_decision = np.take_along_axis(tree.embeddings.is_decision_node,
                                     parents, axis=1)
  assert calls == {"decision": 1 + int(np.sum(from_decision.any(0))),
                   "chance": 1 + int(np.sum((~from_decision).any(0)))}
  assert calls["decision"] + calls["chance"] < 2 * n + 2

  policy = table_policy(mcts, n, temperature=0.0)
  mapped, _, _ = jax.device_get(jax.jit(jax.vmap(
      policy, in_axes=(None, 0, 0, None)))(
          params, roots.reshape(3, 2), invalid.reshape(3, 2, num_actions),
          key))
  np.testing.assert_allclose(
      mapped.action_weights.reshape(6, num_actions), direct.action_weights,
      atol=1e-6)
  np.testing.assert_array_equal(mapped.action.reshape(6), direct.action)
  np.testing.assert_array_equal(
      mapped.search_tree.node_visits.reshape(6, n + 1), tree.node_visits)


# ---------------------------------------------------------------------------
# Errors.
# ---------------------------------------------------------------------------

def test_bad_model_outputs_are_named():
  params = random_tables(0, num_actions=3, num_outcomes=4)
  decision_fn, chance_fn = table_fns(mcts)
  key = jax.random.PRNGKey(0)

  def flat_logits(*args):
    output, afterstate = decision_fn(*args)
    return output.replace(chance_logits=output.chance_logits[:, 0]), afterstate

  def policy(decision_fn, chance_fn):
    # Traced only: the errors come at trace time, before any compilation.
    def run(params, roots, key):
      root = mcts.RootFnOutput(prior_logits=params["action_logits"][roots],
                               value=params["value"][roots], embedding=roots)
      return mcts.stochastic_muzero_policy(params, key, root, decision_fn,
                                           chance_fn, num_simulations=4)
    return jax.jit(run)(params, np.arange(2, dtype=np.int32), key)

  with pytest.raises(ValueError, match="chance_logits"):
    policy(flat_logits, chance_fn)

  def wrong_state(*args):
    output, state = chance_fn(*args)
    return output, {"state": state}

  with pytest.raises(TypeError, match="root.embedding"):
    policy(decision_fn, wrong_state)

  def few_actions(*args):
    output, state = chance_fn(*args)
    return output.replace(action_logits=output.action_logits[:, :2]), state

  with pytest.raises(ValueError, match="action_logits"):
    policy(decision_fn, few_actions)
