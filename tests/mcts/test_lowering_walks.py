"""The walk kernel (`mcts.lowering.pallas_walk`, chosen by
`mcts.lowering.walks`) builds
the same trees as the generic walk: run in Pallas' interpreter on the CPU,
on random problems; and it lowers for CUDA as one Triton call."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mcts
from mcts import action_selection
from mcts import qtransforms
from mcts import rules
from mcts import stochastic
from mcts.lowering import platforms
from mcts.lowering import walks
from tests.mcts import problems
from tests.mcts import test_stochastic


def _interior_invalid_recurrent_fn(base_fn, num_actions):
  """`base_fn` whose nodes mark actions invalid by a hash of their state
  (never all of them; some states all, which the search then ignores)."""
  def recurrent_fn(params, rng_key, action, embedding):
    out, state = base_fn(params, rng_key, action, embedding)
    bits = (state[:, None] * 7 + jnp.arange(num_actions) * 3) % 5 == 0
    return out.replace(invalid_actions=bits), state
  return recurrent_fn


def _policy_fn(policy, problem, *, interior_invalid=False,
               num_simulations=24, **kwargs):
  """`(params, key, tree) -> PolicyOutput` of `policy` on `problem`; `tree`
  None for a fresh search."""
  recurrent_fn = problem.recurrent_fn(mcts)
  if interior_invalid:
    recurrent_fn = _interior_invalid_recurrent_fn(recurrent_fn,
                                                  problem.num_actions)
  root = problem.root(mcts)
  invalid = problem.invalid_actions_jax()

  def run(params, key, tree=None):
    return getattr(mcts, policy)(
        params, key, root, recurrent_fn, num_simulations=num_simulations,
        invalid_actions=invalid, tree=tree, **kwargs)
  return run


def _both_walks(fn, *args):
  """`fn(*args)`, jitted, with the generic walk and with the kernel (in
  Pallas' interpreter). The walk is chosen when `fn` is traced: each
  mode jits a function of its own, which JAX traces anew."""
  with walks.walk_kernel("never"):
    generic = jax.device_get(jax.jit(lambda *a: fn(*a))(*args))
  with walks.walk_kernel("always", interpret=True):
    kernel = jax.device_get(jax.jit(lambda *a: fn(*a))(*args))
  return generic, kernel


def _assert_same_trees(a, b):
  for name, x, y in zip(a.search_tree.keys(), a.search_tree.values(),
                        b.search_tree.values()):
    np.testing.assert_array_equal(
        np.asarray(x, np.float32) if name == "embeddings" else x,
        np.asarray(y, np.float32) if name == "embeddings" else y,
        err_msg=name)
  np.testing.assert_array_equal(a.action, b.action)


CASES = {
    # policy, batch, actions, discounts, extra arguments
    "muzero-zero_sum-invalid-depth": (
        "muzero_policy", 3, 5, "zero_sum",
        dict(interior_invalid=True, max_depth=4, dirichlet_fraction=0.25)),
    "muzero-b16-minmax-bf16": (
        "muzero_policy", 16, 5, "mixed",
        dict(qtransform=functools.partial(
            qtransforms.qtransform_by_min_max, min_value=-2.0,
            max_value=2.0), pb_c_init=2.0, embedding_dtype=jnp.bfloat16)),
    "gumbel-zero_sum-invalid-depth": (
        "gumbel_muzero_policy", 3, 5, "zero_sum",
        dict(interior_invalid=True, max_depth=4)),
    "gumbel-b1-a20-m4-bf16": (
        "gumbel_muzero_policy", 1, 20, "mixed",
        dict(max_num_considered_actions=4, embedding_dtype=jnp.bfloat16)),
}


@pytest.mark.parametrize("case", [
    c if c.endswith("depth") else pytest.param(c, marks=pytest.mark.slow)
    for c in CASES])
def test_kernel_builds_the_generic_trees(case):
  policy, batch, actions, discounts, kwargs = CASES[case]
  problem = problems.make_problem(1, num_actions=actions, batch_size=batch,
                                  discount_kind=discounts, with_invalid=True)
  fn = _policy_fn(policy, problem, **kwargs)
  generic, kernel = _both_walks(fn, problem.params(), jax.random.PRNGKey(3))
  _assert_same_trees(generic, kernel)


@pytest.mark.parametrize("case", [
    pytest.param("muzero-zero_sum-invalid-depth", marks=pytest.mark.slow),
    "gumbel-zero_sum-invalid-depth"])
def test_kernel_path_feeds_the_accelerator_backup(case):
  """With an accelerator's lowering forced on the CPU, the backup goes along
  the walk's recorded path (`lowering.backup.backward_along_path`): the kernel's
  path and depth give it the generic walk's trees exactly."""
  policy, batch, actions, discounts, kwargs = CASES[case]
  problem = problems.make_problem(2, num_actions=actions, batch_size=batch,
                                  discount_kind=discounts, with_invalid=True)
  fn = _policy_fn(policy, problem, **kwargs)
  jax.clear_caches()
  with platforms.forced_platform("default"):
    generic, kernel = _both_walks(fn, problem.params(), jax.random.PRNGKey(5))
  jax.clear_caches()
  _assert_same_trees(generic, kernel)


def test_kernel_breaks_ties_by_the_same_noise():
  """Uniform priors, zero values and rewards: pUCT's scores tie exactly,
  and only the hashed noise (by depth and tree) decides."""
  problem = problems.make_problem(4, num_actions=6, batch_size=4,
                                  logit_scale=0.0)
  zeros = np.zeros_like(problem.value)
  problem = dataclasses.replace(problem, value=zeros, reward=zeros)
  fn = _policy_fn("muzero_policy", problem, dirichlet_fraction=0.0)
  generic, kernel = _both_walks(fn, problem.params(), jax.random.PRNGKey(5))
  _assert_same_trees(generic, kernel)
  depths = np.asarray(generic.search_tree.parents > 0).sum()
  assert depths > 0  # The trees go below the root.


def test_kernel_skips_root_invalid_actions_with_unmasked_priors():
  """`search` with the library's pUCT rule (`rules.Puct`, as the policies
  describe it) and root priors that favour the invalid actions (the
  policies mask them, `search` does not): both walks skip them alike."""
  problem = problems.make_problem(3, num_actions=5, batch_size=3,
                                  with_invalid=True, invalid_prob=0.5)
  logits = np.where(problem.invalid_actions, 5.0, 0.0).astype(np.float32)
  rule = rules.Puct()

  def run(params, key):
    root = problem.root(mcts).replace(prior_logits=jnp.asarray(logits))
    return mcts.search(
        params, key, root=root, recurrent_fn=problem.recurrent_fn(mcts),
        root_action_selection_fn=rule, interior_action_selection_fn=rule,
        num_simulations=12,
        invalid_actions=problem.invalid_actions_jax())
  generic, kernel = _both_walks(run, problem.params(), jax.random.PRNGKey(0))
  for name, x in generic.items():
    np.testing.assert_array_equal(x, kernel[name], err_msg=name)
  root_visits = kernel.children_visits[:, 0]
  assert np.all(root_visits[problem.invalid_actions] == 0)


@pytest.mark.parametrize("policy", [
    pytest.param("muzero_policy", marks=pytest.mark.slow),
    "gumbel_muzero_policy"])
def test_kernel_continues_kept_trees_as_the_generic_walk(policy):
  problem = problems.make_problem(2, num_actions=4, batch_size=3,
                                  discount_kind="zero_sum",
                                  with_invalid=True)
  fn = _policy_fn(policy, problem, interior_invalid=True, capacity=40,
                  num_simulations=16)
  first = jax.jit(fn)(problem.params(), jax.random.PRNGKey(0))
  kept = mcts.get_subtree(first.search_tree, first.action)
  generic, kernel = _both_walks(fn, problem.params(), jax.random.PRNGKey(1),
                                kept)
  _assert_same_trees(generic, kernel)
  assert np.all(kernel.search_tree.node_visits[:, 0] > 16)


def test_library_rules_are_recognised_and_others_are_not():
  puct = rules.Puct(pb_c_init=1.5)
  assert walks.kernel_rule(puct, puct) == rules.Puct(
      pb_c_init=1.5, pb_c_base=19652.0,
      qtransform=qtransforms.ByParentAndSiblings(epsilon=1e-8))
  root = rules.GumbelRoot(num_simulations=8, max_num_considered_actions=4)
  interior = rules.GumbelInterior()
  assert walks.kernel_rule(root, interior) == root
  # What the policies pass takes the kernel: a Q-transform given as mctx's
  # users give it is described.
  min_max = qtransforms.described(functools.partial(
      mcts.qtransform_by_min_max, min_value=-1.0, max_value=1.0))
  with_min_max = rules.Puct(qtransform=min_max)
  assert walks.kernel_rule(with_min_max, with_min_max) == with_min_max
  # A user's rule (even the library's function, undescribed), the
  # stochastic policy's, a user's Q-transform, a Gumbel rule's Q-transform
  # under pUCT, differing rules and a traced parameter keep the generic
  # walk.
  user = lambda key, tree, node, depth=0: jnp.int32(0)  # pylint: disable=g-long-lambda
  library_fn = action_selection.muzero_action_selection
  chance = functools.partial(stochastic.stochastic_action_selection,
                             pb_c_init=1.25, pb_c_base=19652.0,
                             qtransform=qtransforms.qtransform_by_min_max)
  custom_q = rules.Puct(qtransform=lambda tree, node: 0.0)
  mixed_q = rules.Puct(qtransform=qtransforms.CompletedByMixValue())
  traced = rules.Puct(pb_c_init=jnp.float32(1.0))
  assert walks.kernel_rule(user, user) is None
  assert walks.kernel_rule(functools.partial(library_fn, depth=0),
                           library_fn) is None
  assert walks.kernel_rule(functools.partial(chance, depth=0),
                           chance) is None
  assert walks.kernel_rule(custom_q, custom_q) is None
  assert walks.kernel_rule(mixed_q, mixed_q) is None
  assert walks.kernel_rule(puct, rules.Puct(pb_c_init=2.0)) is None
  assert walks.kernel_rule(root, rules.GumbelInterior(
      qtransforms.CompletedByMixValue(value_scale=1.0))) is None
  assert walks.kernel_rule(traced, traced) is None
  with pytest.raises(ValueError, match="mode"):
    with walks.walk_kernel("sometimes"):
      pass


@pytest.mark.slow
def test_stochastic_policy_keeps_the_generic_walk():
  params = test_stochastic.dice_params()
  totals = jnp.asarray([2, 5, 8], jnp.int32)

  def run(params, totals):
    return test_stochastic._dice_search.__wrapped__(  # pylint: disable=protected-access
        params, totals, num_simulations=12)
  generic, kernel = _both_walks(run, params, totals)
  for x, y in zip(jax.tree.leaves(generic), jax.tree.leaves(kernel)):
    np.testing.assert_array_equal(x, y)


def _lowered(policy, mode, platform):
  """The text of `policy`'s search on a small problem, traced under
  `walk_kernel(mode)` (a function of its own: traced anew) and lowered for
  `platform` (on this CPU machine)."""
  problem = problems.make_problem(0, num_actions=5, batch_size=3,
                                  with_invalid=True)
  fn = _policy_fn(policy, problem, num_simulations=8)
  with walks.walk_kernel(mode):
    traced = jax.jit(lambda *a: fn(*a)).trace(problem.params(),
                                              jax.random.PRNGKey(0))
  return traced.lower(lowering_platforms=(platform,)).as_text()


def _walk_kernels(text: str) -> int:
  """The Triton calls of the walk kernel in a lowered program's text."""
  calls = text.count("@__gpu$xla.gpu.triton(")
  assert calls == text.count('name = "mcts_walk"')
  return calls


@pytest.mark.parametrize("policy", ["muzero_policy", "gumbel_muzero_policy"])
def test_policy_lowers_for_cuda_with_one_walk_kernel(policy):
  """`walk_kernel("always")` lowered for CUDA (on this CPU machine): the
  walk is one Triton call inside the simulation loop; lowered for the CPU,
  the generic walk."""
  assert _walk_kernels(_lowered(policy, "always", "cuda")) == 1
  assert "xla.gpu.triton" not in _lowered(policy, "auto", "cpu")


@pytest.mark.parametrize("measured", [False, True])
def test_auto_takes_the_kernel_on_gpus_only_once_measured(measured,
                                                          monkeypatch):
  """By default no GPU user runs the kernel, which no GPU has run: `auto`
  lowered for CUDA holds no Triton call unless `KERNEL_MEASURED_ON_GPU`."""
  monkeypatch.setattr(walks, "KERNEL_MEASURED_ON_GPU", measured)
  for platform in ("cuda", "rocm"):
    lowered = _lowered("muzero_policy", "auto", platform)
    assert _walk_kernels(lowered) == int(measured), platform
    assert "pallas" not in lowered.lower() or measured


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("policy", ["muzero_policy", "gumbel_muzero_policy"])
def test_kernel_matches_generic_on_random_problems(policy, seed):
  rng = np.random.default_rng(seed)
  actions = int(rng.choice([2, 3, 7, 16, 33]))
  batch = int(rng.choice([1, 4, 9]))
  discounts = problems.DISCOUNT_KINDS[seed % len(problems.DISCOUNT_KINDS)]
  problem = problems.make_problem(100 + seed, num_actions=actions,
                                  batch_size=batch, discount_kind=discounts,
                                  with_invalid=bool(seed % 2))
  kwargs = dict(interior_invalid=seed % 3 == 0,
                num_simulations=int(rng.choice([8, 31, 50])),
                max_depth=[None, 2, 5][seed % 3])
  if policy == "gumbel_muzero_policy":
    kwargs["max_num_considered_actions"] = int(rng.choice([2, 4, 16]))
  fn = _policy_fn(policy, problem, **kwargs)
  generic, kernel = _both_walks(fn, problem.params(),
                                jax.random.PRNGKey(seed))
  _assert_same_trees(generic, kernel)


@pytest.mark.parametrize("policy", ["muzero_policy", "gumbel_muzero_policy"])
def test_kernel_leaves_no_round_trip_loop_per_simulation_on_gpus(policy):
  """benchmarks/launch_count on the CUDA lowering: the generic walk is a
  loop of unknown trip count per simulation (the backup along the recorded
  path has none); with the kernel none is left, and the walk is one custom
  call."""
  from benchmarks import launch_count  # pylint: disable=g-import-not-at-top
  counts = {walk: launch_count.measure(policy, walk, batch=4, actions=8,
                                       platforms=("cuda",))["cuda_lowered"]
            for walk in ("generic", "kernel")}
  assert counts["generic"]["loops_unknown_trip"] == 1
  assert counts["generic"]["custom_calls"] == []
  assert counts["kernel"]["loops_unknown_trip"] == 0
  assert counts["kernel"]["custom_calls"] == ["__gpu$xla.gpu.triton"]
