"""Random, deterministic, table-driven search problems for tests.

A problem is a finite deterministic "environment + model": every state
``s`` in ``range(num_states)`` has

* ``prior_logits[s]`` (``[A]``) and ``value[s]``: the network outputs at ``s``;
* ``reward[s]`` and ``discount[s]``: the reward and discount *on the edge that
  arrives at* ``s`` (so the recurrent function returns the entries of the
  child state);
* ``next_state[s, a]``: the successor of ``s`` under action ``a``.

The embedding of a search node is simply its int32 state id, so the same
problem can drive the JAX searches (``mcts`` and DeepMind's ``mctx``; both
are passed in as a module so that their own ``RootFnOutput`` /
``RecurrentFnOutput`` classes are used) and the pure numpy reference in
``tests/mcts/reference_search.py`` (via :meth:`Problem.np_step`).

All JAX-side data is float32 / int32. The numpy side reads the *same* float32
numbers and promotes them to float64, so both see bit-identical inputs.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional, Tuple

import numpy as np

from tests.mcts import reference_search as rs

DISCOUNT_KINDS = ("one", "gamma", "zero_sum", "mixed")


@dataclasses.dataclass(frozen=True)
class Problem:
  """A table-driven model. Build with :func:`make_problem`."""

  next_state: np.ndarray    # [S, A] int32
  reward: np.ndarray        # [S] float32
  discount: np.ndarray      # [S] float32
  value: np.ndarray         # [S] float32
  prior_logits: np.ndarray  # [S, A] float32
  root_states: np.ndarray   # [B] int32
  invalid_actions: Optional[np.ndarray]  # [B, A] bool, or None
  seed: int
  discount_kind: str

  # ---- shapes --------------------------------------------------------------
  @property
  def num_states(self) -> int:
    return self.next_state.shape[0]

  @property
  def num_actions(self) -> int:
    return self.next_state.shape[1]

  @property
  def batch_size(self) -> int:
    return self.root_states.shape[0]

  # ---- JAX side ------------------------------------------------------------
  def params(self) -> dict:
    """The tables as a dict pytree (pass as ``params`` to the search)."""
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    return dict(
        next_state=jnp.asarray(self.next_state, jnp.int32),
        reward=jnp.asarray(self.reward, jnp.float32),
        discount=jnp.asarray(self.discount, jnp.float32),
        value=jnp.asarray(self.value, jnp.float32),
        prior_logits=jnp.asarray(self.prior_logits, jnp.float32),
    )

  def root(self, module: Any, root_states: Optional[np.ndarray] = None):
    """``module.RootFnOutput`` for the root states (default: the problem's)."""
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    states = self.root_states if root_states is None else root_states
    states = np.asarray(states, np.int32)
    return module.RootFnOutput(
        prior_logits=jnp.asarray(self.prior_logits[states], jnp.float32),
        value=jnp.asarray(self.value[states], jnp.float32),
        embedding=jnp.asarray(states, jnp.int32),
    )

  def invalid_actions_jax(self):
    """The invalid-action mask as a float32 ``[B, A]`` array, or None."""
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    if self.invalid_actions is None:
      return None
    return jnp.asarray(self.invalid_actions, jnp.float32)

  def recurrent_fn(self, module: Any):
    """Returns an mctx-style recurrent_fn producing ``module.RecurrentFnOutput``.

    The returned function reads the tables from ``params`` (see
    :meth:`params`), so it can be jitted once and reused across problems of
    the same shapes.
    """
    return make_recurrent_fn(module)

  # ---- numpy side (for the reference) --------------------------------------
  def np_root(self, b: int) -> Tuple[np.ndarray, float, int]:
    """(prior_logits [A] float64, value float, embedding int) of tree ``b``."""
    s = int(self.root_states[b])
    return (self.prior_logits[s].astype(np.float64), float(self.value[s]), s)

  def np_step(self, embedding: int, action: int):
    """Numpy model: ``(reward, discount, prior_logits [A], value, next_emb)``."""
    s = int(self.next_state[int(embedding), int(action)])
    return (float(self.reward[s]), float(self.discount[s]),
            self.prior_logits[s].astype(np.float64), float(self.value[s]), s)


def make_recurrent_fn(module: Any):
  """Table-lookup recurrent_fn returning ``module.RecurrentFnOutput``."""

  def recurrent_fn(params, rng_key, action, embedding):
    del rng_key
    nxt = params["next_state"][embedding, action]
    out = module.RecurrentFnOutput(
        reward=params["reward"][nxt],
        discount=params["discount"][nxt],
        prior_logits=params["prior_logits"][nxt],
        value=params["value"][nxt],
    )
    return out, nxt

  return recurrent_fn


def make_problem(
    seed: int,
    *,
    num_actions: int,
    batch_size: int,
    num_states: int = 200,
    discount_kind: str = "gamma",
    with_invalid: bool = False,
    logit_scale: float = 1.0,
    invalid_prob: float = 0.35,
) -> Problem:
  """Builds a random problem; everything is a function of the arguments.

  Args:
    seed: numpy seed.
    num_actions: A.
    batch_size: number of root states B.
    num_states: S, size of the state table.
    discount_kind: "one" (all 1.0), "gamma" (all 0.9), "zero_sum" (all -1.0,
      two-player alternating), or "mixed" (per state, drawn from
      {0.0, 0.5, 0.9, 1.0, -1.0}; 0.0 acts like a terminal edge).
    with_invalid: also draw a random ``[B, A]`` invalid-action mask (True =
      invalid) that never marks all actions of a row invalid.
    logit_scale: standard deviation of the prior logits.
    invalid_prob: probability that an action is marked invalid.
  """
  if discount_kind not in DISCOUNT_KINDS:
    raise ValueError(f"unknown discount_kind {discount_kind!r}")
  rng = np.random.default_rng(seed)
  s, a = num_states, num_actions
  next_state = rng.integers(0, s, size=(s, a)).astype(np.int32)
  reward = rng.normal(0.0, 0.5, size=s).astype(np.float32)
  value = rng.normal(0.0, 1.0, size=s).astype(np.float32)
  prior_logits = (logit_scale * rng.normal(size=(s, a))).astype(np.float32)
  if discount_kind == "one":
    discount = np.ones(s, np.float32)
  elif discount_kind == "gamma":
    discount = np.full(s, 0.9, np.float32)
  elif discount_kind == "zero_sum":
    discount = np.full(s, -1.0, np.float32)
  else:
    choices = np.array([0.0, 0.5, 0.9, 1.0, -1.0], np.float32)
    discount = choices[rng.integers(0, len(choices), size=s)]
  root_states = rng.choice(s, size=batch_size, replace=False).astype(np.int32)
  invalid = None
  if with_invalid:
    invalid = rng.random((batch_size, a)) < invalid_prob
    keep = rng.integers(0, a, size=batch_size)
    invalid[np.arange(batch_size), keep] = False
  return Problem(
      next_state=next_state, reward=reward, discount=discount, value=value,
      prior_logits=prior_logits, root_states=root_states,
      invalid_actions=invalid, seed=seed, discount_kind=discount_kind)


# -----------------------------------------------------------------------------
# Shared test cases (used by test_reference_vs_mctx.py and
# test_against_reference.py).
# -----------------------------------------------------------------------------

# Q-transform variants: name -> (function name in mctx / mcts / the reference,
# keyword arguments).
QTRANSFORMS = {
    "min_max": ("qtransform_by_min_max", dict(min_value=-2.0, max_value=2.0)),
    "parent_siblings_eps": ("qtransform_by_parent_and_siblings",
                            dict(epsilon=1e-3)),
    "mix_raw": ("qtransform_completed_by_mix_value",
                dict(use_mixed_value=False, value_scale=0.2,
                     maxvisit_init=20.0)),
    "mix_norescale": ("qtransform_completed_by_mix_value",
                      dict(rescale_values=False, value_scale=0.5)),
}


@dataclasses.dataclass(frozen=True)
class Case:
  """A static search configuration plus the problems it is run on.

  Every problem of a case has the same shapes, so one jit compilation per
  (implementation, case) serves all of them.
  """
  name: str
  policy: str                     # "muzero" | "gumbel_muzero"
  batch_size: int
  num_actions: int
  num_simulations: int
  discount_kinds: Tuple[str, ...]  # one problem per entry
  with_invalid: bool = False
  max_depth: Optional[int] = None
  qtransform: Optional[str] = None  # key of QTRANSFORMS, None = default
  policy_kwargs: Tuple[Tuple[str, Any], ...] = ()
  seed: int = 0
  num_states: int = 200
  temperature: Optional[float] = None  # muzero only; None = default (1.0)

  @property
  def deterministic_action(self) -> bool:
    """Whether ``action`` is a function of the search (no sampling)."""
    return self.policy == "gumbel_muzero" or self.temperature == 0.0

  def __str__(self):
    return self.name


def _c(name, policy, b, a, n, kinds, **kw):
  return Case(name=name, policy=policy, batch_size=b, num_actions=a,
              num_simulations=n, discount_kinds=kinds, **kw)


# Default cases: 9 compilations per implementation, 23 problems, 83 trees.
# Each case combines several features to keep the number of compilations low.
CASES = (
    _c("mz-b3a5n32-inv-greedy", "muzero", 3, 5, 32,
       ("zero_sum", "mixed", "gamma"), with_invalid=True, seed=1,
       temperature=0.0),
    _c("mz-b1a2n17", "muzero", 1, 2, 17, ("one", "gamma", "zero_sum"),
       seed=2),
    _c("mz-b3a3n17-d2-minmax-pbc", "muzero", 3, 3, 17,
       ("gamma", "zero_sum", "mixed"), max_depth=2, qtransform="min_max",
       seed=3, policy_kwargs=(("pb_c_init", 2.0), ("pb_c_base", 30.0))),
    _c("gz-b3a5n32-inv", "gumbel_muzero", 3, 5, 32,
       ("zero_sum", "mixed", "one"), with_invalid=True, seed=4),
    _c("gz-b1a2n17", "gumbel_muzero", 1, 2, 17, ("one", "gamma", "mixed"),
       seed=5),
    _c("gz-b3a3n17-d2", "gumbel_muzero", 3, 3, 17,
       ("mixed", "zero_sum", "gamma"), max_depth=2, seed=6),
    _c("gz-b3a5n12-inv-d3-m4-mixraw", "gumbel_muzero", 3, 5, 12,
       ("gamma", "one", "mixed"), with_invalid=True, max_depth=3,
       qtransform="mix_raw", seed=7,
       policy_kwargs=(("max_num_considered_actions", 4),)),
    # 16 trees of 5 actions: 80 elements per reduction, past the size from
    # which the selection rules reduce in several vectorised passes.
    _c("mz-b16a5n24-inv", "muzero", 16, 5, 24, ("mixed",),
       with_invalid=True, seed=8),
    _c("gz-b16a5n24-inv", "gumbel_muzero", 16, 5, 24, ("mixed",),
       with_invalid=True, seed=9),
)

# Extra cases for `pytest -m slow`.
SLOW_CASES = (
    _c("mz-b1a3n1", "muzero", 1, 3, 1, ("gamma", "zero_sum"), seed=11),
    _c("gz-b1a3n1-inv", "gumbel_muzero", 1, 3, 1, ("gamma", "mixed"),
       with_invalid=True, seed=12),
    _c("mz-b3a5n32-d1", "muzero", 3, 5, 32, ("mixed",), max_depth=1, seed=13),
    _c("gz-b3a5n32-d1-inv", "gumbel_muzero", 3, 5, 32, ("mixed",),
       with_invalid=True, max_depth=1, seed=14),
    _c("mz-b3a5n32-eps", "muzero", 3, 5, 32, ("zero_sum", "one"),
       qtransform="parent_siblings_eps", seed=15),
    _c("mz-b3a5n8-inv-d3", "muzero", 3, 5, 8, ("mixed", "one"),
       with_invalid=True, max_depth=3, seed=16),
    _c("gz-b3a5n64-inv-norescale", "gumbel_muzero", 3, 5, 64,
       ("zero_sum", "one"), with_invalid=True, qtransform="mix_norescale",
       seed=17),
    _c("gz-b3a5n17-s50", "gumbel_muzero", 3, 5, 17, ("one", "mixed"),
       seed=18, num_states=50),
    _c("mz-b3a2n64-inv-s50", "muzero", 3, 2, 64, ("gamma", "mixed"),
       with_invalid=True, seed=19, num_states=50),
    _c("gz-b3a2n64-d4", "gumbel_muzero", 3, 2, 64, ("zero_sum", "gamma"),
       max_depth=4, seed=20),
    _c("mz-b3a5n64-d3", "muzero", 3, 5, 64, ("mixed", "zero_sum"),
       max_depth=3, seed=21),
    _c("gz-b3a5n32-m2-inv", "gumbel_muzero", 3, 5, 32, ("gamma", "mixed"),
       with_invalid=True, seed=22,
       policy_kwargs=(("max_num_considered_actions", 2),)),
)


def qtransform_for(module: Any, case: Case):
  """The case's qtransform taken from ``module`` (None = policy default)."""
  if case.qtransform is None:
    return None
  fname, kwargs = QTRANSFORMS[case.qtransform]
  return functools.partial(getattr(module, fname), **kwargs)


def reference_kwargs(case: Case) -> dict:
  """Keyword arguments for ``reference_search`` matching the case."""
  kw = dict(policy=case.policy, num_simulations=case.num_simulations,
            max_depth=case.max_depth, **dict(case.policy_kwargs))
  qt = qtransform_for(rs, case)
  if qt is not None:
    kw["qtransform"] = qt
  return kw


_CASE_PROBLEMS: dict = {}


def case_problems(case: Case, tol: float = 1e-4, max_tries: int = 50):
  """[(problem, reference results)] for each discount kind of ``case``.

  For each discount kind, seeds are tried in a fixed order and the first
  problem whose reference search is well-conditioned for every tree (no
  selection decided by less than ``tol``, no normalization by a spread below
  ``tol``; see ``reference_search``) is used. Deterministic.
  """
  if case in _CASE_PROBLEMS:
    return _CASE_PROBLEMS[case]
  out = []
  for k, kind in enumerate(case.discount_kinds):
    for attempt in range(max_tries):
      seed = 100_003 * case.seed + 1_009 * k + attempt
      problem = make_problem(
          seed, num_actions=case.num_actions, batch_size=case.batch_size,
          num_states=case.num_states, discount_kind=kind,
          with_invalid=case.with_invalid)
      refs = rs.reference_search_batch(problem, **reference_kwargs(case))
      if all(r.well_conditioned(tol) for r in refs):
        out.append((problem, refs))
        break
    else:
      raise RuntimeError(f"no well-conditioned problem for {case} / {kind}")
  _CASE_PROBLEMS[case] = out
  return out


_RUNNERS: dict = {}


def policy_runner(module: Any, case: Case, *, jit: bool = True):
  """``f(problem, rng_key) -> module.PolicyOutput`` for the case's config.

  Noise is off (``dirichlet_fraction=0`` / ``gumbel_scale=0``). Jitted
  runners are cached per (module, case) and take the problem's tables as
  arguments, so all problems of a case share one compilation.
  """
  key = (module.__name__, case, jit)
  if key in _RUNNERS:
    return _RUNNERS[key]
  import jax  # pylint: disable=g-import-not-at-top

  kwargs = dict(case.policy_kwargs)
  qt = qtransform_for(module, case)
  if qt is not None:
    kwargs["qtransform"] = qt
  if case.policy == "muzero":
    policy_fn = module.muzero_policy
    kwargs["dirichlet_fraction"] = 0.0
    if case.temperature is not None:
      kwargs["temperature"] = case.temperature
  else:
    policy_fn = module.gumbel_muzero_policy
    kwargs["gumbel_scale"] = 0.0
  recurrent_fn = make_recurrent_fn(module)

  def run(params, rng_key, prior_logits, value, embedding, invalid_actions):
    root = module.RootFnOutput(prior_logits=prior_logits, value=value,
                               embedding=embedding)
    return policy_fn(params, rng_key, root, recurrent_fn,
                     num_simulations=case.num_simulations,
                     invalid_actions=invalid_actions,
                     max_depth=case.max_depth, **kwargs)

  if jit:
    run = jax.jit(run)

  def runner(problem: Problem, rng_key=None):
    if rng_key is None:
      rng_key = jax.random.PRNGKey(problem.seed)
    root = problem.root(module)
    return run(problem.params(), rng_key, root.prior_logits, root.value,
               root.embedding, problem.invalid_actions_jax())

  _RUNNERS[key] = runner
  return runner
