"""A slow, deliberately simple reference MCTS (plain Python + numpy float64).

One Python object per node, children in a dict, one tree at a time. It
implements the semantics of mctx's ``muzero_policy`` (with Dirichlet noise
off) and ``gumbel_muzero_policy`` (with ``gumbel_scale=0``), so that both
mctx and this project's ``mcts`` can be checked against it.

Summary of the semantics (see the docstrings below for details):

* Node 0 is the root (visits 1, value = raw value = root value).
* Simulation ``i`` (0-based) walks down from the root, picking actions with
  the root rule at depth 0 and the interior rule deeper; it moves into the
  chosen child only if the child exists and ``depth + 1 < max_depth``. The
  (parent, action) where it stops is evaluated by the model. A new child gets
  node index ``i + 1``; an existing child (only possible at the depth cutoff)
  is re-evaluated: one more visit, value = running mean, raw value / prior /
  embedding overwritten. Then the leaf value is backed up:
  ``G = r + d * G`` per edge, parent value = running mean including ``G``.
* ``Q(s, a) = r(s, a) + d(s, a) * value(child)`` for visited children.

Use :func:`reference_search` for one tree, :func:`reference_search_batch`
for a whole :class:`tests.mcts.problems.Problem` batch.

The reference also measures how well-conditioned the run was: the smallest
gap between the best and the second-best selection score seen in any
argmax (``min_margin``) and the smallest max-min spread used by a
normalizing qtransform at a node with visited children (``min_spread``).
Tests use these to avoid problems whose outcome would hinge on float32
rounding or on mctx's 1e-7 tie-breaking noise.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

F32_MIN = float(np.finfo(np.float32).min)
F32_TINY = float(np.finfo(np.float32).tiny)
NO_PARENT = -1
UNVISITED = -1


# -----------------------------------------------------------------------------
# Tree
# -----------------------------------------------------------------------------


class Node:
  """One search node."""

  def __init__(self, index: int, prior_logits, value: float, embedding,
               parent: Optional["Node"] = None, action: int = NO_PARENT,
               reward: float = 0.0, discount: float = 0.0):
    self.index = index
    self.parent = parent
    self.action_from_parent = action
    self.reward = float(reward)      # on the edge parent -> self
    self.discount = float(discount)  # on the edge parent -> self
    self.prior_logits = np.asarray(prior_logits, np.float64).copy()
    self.raw_value = float(value)
    self.value = float(value)
    self.visits = 1
    self.embedding = embedding
    self.children: Dict[int, "Node"] = {}

  @property
  def num_actions(self) -> int:
    return self.prior_logits.shape[0]

  def child_visits(self) -> np.ndarray:
    out = np.zeros(self.num_actions, np.int64)
    for a, c in self.children.items():
      out[a] = c.visits
    return out

  def qvalues(self) -> np.ndarray:
    """Q(s, a) for visited children, 0 for unvisited ones (as in mctx)."""
    out = np.zeros(self.num_actions, np.float64)
    for a, c in self.children.items():
      out[a] = c.reward + c.discount * c.value
    return out


class _Conditioning:
  """Tracks how close the run came to ties / degenerate normalizations."""

  def __init__(self):
    self.min_margin = math.inf
    self.min_spread = math.inf

  def margin(self, scores: np.ndarray):
    finite = np.sort(scores[np.isfinite(scores)])
    if finite.size >= 2:
      self.min_margin = min(self.min_margin, float(finite[-1] - finite[-2]))

  def spread(self, value: float):
    self.min_spread = min(self.min_spread, float(value))


def _softmax(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  e = np.exp(x - np.max(x))
  return e / np.sum(e)


def _argmax(scores: np.ndarray, cond: Optional[_Conditioning]) -> int:
  if cond is not None:
    cond.margin(scores)
  return int(np.argmax(scores))  # first index on ties


# -----------------------------------------------------------------------------
# Q transforms: (node, cond) -> completed/normalized Q-values [A]
# -----------------------------------------------------------------------------


def qtransform_by_parent_and_siblings(node: Node, cond=None, *,
                                      epsilon: float = 1e-8) -> np.ndarray:
  visits = node.child_visits()
  visited = visits > 0
  q = node.qvalues()
  safe = np.where(visited, q, node.value)
  lo = min(node.value, float(np.min(safe)))
  hi = max(node.value, float(np.max(safe)))
  if cond is not None and visited.any():
    cond.spread(hi - lo)
  completed = np.where(visited, q, lo)
  return (completed - lo) / max(hi - lo, epsilon)


def qtransform_by_min_max(node: Node, cond=None, *, min_value: float,
                          max_value: float) -> np.ndarray:
  del cond
  visited = node.child_visits() > 0
  x = np.where(visited, node.qvalues(), min_value)
  return (x - min_value) / (max_value - min_value)


def qtransform_completed_by_mix_value(
    node: Node, cond=None, *, value_scale: float = 0.1,
    maxvisit_init: float = 50.0, rescale_values: bool = True,
    use_mixed_value: bool = True, epsilon: float = 1e-8) -> np.ndarray:
  visits = node.child_visits()
  visited = visits > 0
  q = node.qvalues()
  if use_mixed_value:
    probs = np.maximum(_softmax(node.prior_logits), F32_TINY)
    n_total = float(np.sum(visits))
    if visited.any():
      weighted_q = float(np.sum(probs[visited] * q[visited]) /
                         np.sum(probs[visited]))
    else:
      weighted_q = 0.0
    fill = (node.raw_value + n_total * weighted_q) / (n_total + 1.0)
  else:
    fill = node.raw_value
  completed = np.where(visited, q, fill)
  if rescale_values:
    spread = float(np.max(completed) - np.min(completed))
    if cond is not None and visited.any():
      cond.spread(spread)
    completed = (completed - np.min(completed)) / max(spread, epsilon)
  return (maxvisit_init + float(np.max(visits))) * value_scale * completed


# -----------------------------------------------------------------------------
# Action selection
# -----------------------------------------------------------------------------


def puct_select(node: Node, invalid: Optional[np.ndarray], qtransform,
                cond, *, pb_c_init: float, pb_c_base: float) -> int:
  """MuZero pUCT; ``invalid`` is given only at the root."""
  n_parent = float(node.visits)
  pb_c = pb_c_init + math.log((n_parent + pb_c_base + 1.0) / pb_c_base)
  probs = _softmax(node.prior_logits)
  policy = math.sqrt(n_parent) * pb_c * probs / (node.child_visits() + 1.0)
  scores = qtransform(node, cond) + policy
  if invalid is not None:
    scores = np.where(invalid, -np.inf, scores)
  return _argmax(scores, cond)


def considered_visit_sequence(max_num_considered: int,
                              num_simulations: int) -> List[int]:
  """Sequential-halving visit schedule (Danihelka et al. 2022)."""
  if max_num_considered <= 1:
    return list(range(num_simulations))
  rounds = int(math.ceil(math.log2(max_num_considered)))
  seq: List[int] = []
  visits = [0] * max_num_considered
  k = max_num_considered
  while len(seq) < num_simulations:
    extra = max(1, int(num_simulations / (rounds * k)))
    for _ in range(extra):
      seq.extend(visits[:k])
      for i in range(k):
        visits[i] += 1
    k = max(2, k // 2)
  return seq[:num_simulations]


def score_considered(considered_visit: int, gumbel: np.ndarray,
                     logits: np.ndarray, completed_q: np.ndarray,
                     visits: np.ndarray) -> np.ndarray:
  base = np.maximum(-1e9, gumbel + (logits - np.max(logits)) + completed_q)
  return np.where(visits == considered_visit, base, -np.inf)


def gumbel_root_select(node: Node, invalid: Optional[np.ndarray], qtransform,
                       cond, *, gumbel: np.ndarray, sequence: Sequence[int]
                       ) -> int:
  visits = node.child_visits()
  considered_visit = sequence[int(np.sum(visits))]
  scores = score_considered(considered_visit, gumbel, node.prior_logits,
                            qtransform(node, cond), visits)
  if invalid is not None:
    scores = np.where(invalid, -np.inf, scores)
  return _argmax(scores, cond)


def gumbel_interior_select(node: Node, qtransform, cond) -> int:
  visits = node.child_visits()
  probs = _softmax(node.prior_logits + qtransform(node, cond))
  scores = probs - visits / (1.0 + np.sum(visits))
  return _argmax(scores, cond)


# -----------------------------------------------------------------------------
# Search
# -----------------------------------------------------------------------------


@dataclasses.dataclass
class ReferenceResult:
  """Statistics of one searched tree (N = num_simulations + 1 slots)."""
  root_visits: np.ndarray            # [A] children visits at the root
  root_value: float
  root_qvalues: np.ndarray           # [A] (0 where unvisited)
  node_visits: np.ndarray            # [N] (0 for empty slots)
  node_values: np.ndarray            # [N]
  raw_values: np.ndarray             # [N]
  parents: np.ndarray                # [N] (-1 for root / empty)
  action_from_parent: np.ndarray     # [N] (-1 for root / empty)
  children_index: np.ndarray         # [N, A] (-1 unvisited)
  children_visits: np.ndarray        # [N, A]
  children_values: np.ndarray        # [N, A]
  children_rewards: np.ndarray       # [N, A]
  children_discounts: np.ndarray     # [N, A]
  children_prior_logits: np.ndarray  # [N, A]
  action_weights: np.ndarray         # [A]
  action: int       # gumbel: the policy's action; muzero: argmax visits
  action_is_unique: bool
  leaf_edges: List[tuple]            # (parent index, action) per simulation
  min_margin: float                  # see module docstring
  min_spread: float

  def well_conditioned(self, tol: float = 1e-4) -> bool:
    return self.min_margin > tol and self.min_spread > tol


def _run_simulations(root: Node, model: Callable, num_simulations: int,
                     max_depth: int, select_root, select_interior
                     ) -> tuple:
  nodes: List[Optional[Node]] = [root] + [None] * num_simulations
  leaf_edges = []
  for sim in range(num_simulations):
    node, depth = root, 0
    while True:
      a = select_root(node) if depth == 0 else select_interior(node)
      child = node.children.get(a)
      depth += 1
      if child is not None and depth < max_depth:
        node = child
        continue
      break
    leaf_edges.append((node.index, a))
    reward, discount, logits, value, emb = model(node.embedding, a)
    if child is None:
      child = Node(sim + 1, logits, value, emb, parent=node, action=a,
                   reward=reward, discount=discount)
      node.children[a] = child
      nodes[sim + 1] = child
    else:  # re-evaluation at the depth cutoff
      child.value = (child.value * child.visits + value) / (child.visits + 1)
      child.visits += 1
      child.raw_value = float(value)
      child.prior_logits = np.asarray(logits, np.float64).copy()
      child.embedding = emb
      child.reward, child.discount = float(reward), float(discount)
    # Backup.
    g = child.value
    cur = child
    while cur.parent is not None:
      g = cur.reward + cur.discount * g
      par = cur.parent
      par.value = (par.value * par.visits + g) / (par.visits + 1)
      par.visits += 1
      cur = par
  return nodes, leaf_edges


def _masked_logits(logits: np.ndarray, invalid: Optional[np.ndarray]):
  """Logits minus their max, invalid ones set to float32 min (mctx style)."""
  if invalid is None:
    return logits
  logits = logits - np.max(logits)
  return np.where(invalid, F32_MIN, logits)


def search_one(prior_logits, value: float, embedding, model: Callable, *,
               policy: str, num_simulations: int,
               max_depth: Optional[int] = None,
               invalid_actions: Optional[np.ndarray] = None,
               qtransform: Optional[Callable] = None,
               pb_c_init: float = 1.25, pb_c_base: float = 19652.0,
               max_num_considered_actions: int = 16,
               gumbel: Optional[np.ndarray] = None) -> ReferenceResult:
  """Searches one tree.

  Args:
    prior_logits: [A] root logits from the network (unmasked).
    value: root value.
    embedding: root embedding (anything ``model`` accepts).
    model: ``model(embedding, action) -> (reward, discount, prior_logits [A],
      value, next_embedding)``.
    policy: "muzero" (Dirichlet fraction 0) or "gumbel_muzero".
    num_simulations: number of simulations.
    max_depth: depth cutoff, default ``num_simulations``.
    invalid_actions: [A] bool mask (True = invalid) or None.
    qtransform: ``f(node, cond) -> [A]``; default by_parent_and_siblings for
      muzero, completed_by_mix_value for gumbel_muzero. Build variants with
      ``functools.partial(qtransform_by_min_max, min_value=.., max_value=..)``.
    pb_c_init, pb_c_base: pUCT constants (muzero).
    max_num_considered_actions: m for sequential halving (gumbel_muzero).
    gumbel: [A] root Gumbel noise (gumbel_muzero), default zeros.
  """
  logits = np.asarray(prior_logits, np.float64)
  num_actions = logits.shape[0]
  invalid = None
  if invalid_actions is not None:
    invalid = np.asarray(invalid_actions).astype(bool)
  if max_depth is None:
    max_depth = num_simulations
  cond = _Conditioning()

  if policy == "muzero":
    qtransform = qtransform or qtransform_by_parent_and_siblings
    # Dirichlet fraction 0: logits -> log(max(softmax(logits), tiny)).
    root_logits = np.log(np.maximum(_softmax(logits), F32_TINY))
    root_logits = _masked_logits(root_logits, invalid)
    puct = functools.partial(puct_select, qtransform=qtransform, cond=cond,
                             pb_c_init=pb_c_init, pb_c_base=pb_c_base)
    select_root = lambda n: puct(n, invalid)
    select_interior = lambda n: puct(n, None)
  elif policy == "gumbel_muzero":
    qtransform = qtransform or qtransform_completed_by_mix_value
    root_logits = _masked_logits(logits, invalid)
    gumbel = (np.zeros(num_actions) if gumbel is None
              else np.asarray(gumbel, np.float64))
    num_valid = num_actions if invalid is None else int(np.sum(~invalid))
    sequence = considered_visit_sequence(
        min(max_num_considered_actions, num_valid), num_simulations)
    select_root = functools.partial(
        gumbel_root_select, invalid=invalid, qtransform=qtransform, cond=cond,
        gumbel=gumbel, sequence=sequence)
    select_interior = functools.partial(
        gumbel_interior_select, qtransform=qtransform, cond=cond)
  else:
    raise ValueError(f"unknown policy {policy!r}")

  root = Node(0, root_logits, value, embedding)
  nodes, leaf_edges = _run_simulations(
      root, model, num_simulations, max_depth, select_root, select_interior)

  # Policy outputs.
  root_visits = root.child_visits()
  if policy == "muzero":
    total = float(np.sum(root_visits))
    if total > 0:
      action_weights = root_visits / total
    else:
      action_weights = np.full(num_actions, 1.0 / num_actions)
    action = int(np.argmax(root_visits))
    action_is_unique = int(np.sum(root_visits == root_visits.max())) == 1
  else:
    completed_q = qtransform(root, None)
    action_weights = _softmax(_masked_logits(root_logits + completed_q,
                                             invalid))
    scores = score_considered(int(np.max(root_visits)), gumbel, root_logits,
                              completed_q, root_visits)
    if invalid is not None:
      scores = np.where(invalid, -np.inf, scores)
    finite = np.sort(scores[np.isfinite(scores)])
    action = int(np.argmax(scores))
    action_is_unique = finite.size < 2 or finite[-1] - finite[-2] > 1e-4

  # Flatten the tree in creation order.
  n = num_simulations + 1
  res = dict(
      node_visits=np.zeros(n, np.int64), node_values=np.zeros(n),
      raw_values=np.zeros(n), parents=np.full(n, NO_PARENT, np.int64),
      action_from_parent=np.full(n, NO_PARENT, np.int64),
      children_index=np.full((n, num_actions), UNVISITED, np.int64),
      children_visits=np.zeros((n, num_actions), np.int64),
      children_values=np.zeros((n, num_actions)),
      children_rewards=np.zeros((n, num_actions)),
      children_discounts=np.zeros((n, num_actions)),
      children_prior_logits=np.zeros((n, num_actions)))
  for node in nodes:
    if node is None:
      continue
    i = node.index
    res["node_visits"][i] = node.visits
    res["node_values"][i] = node.value
    res["raw_values"][i] = node.raw_value
    res["children_prior_logits"][i] = node.prior_logits
    if node.parent is not None:
      res["parents"][i] = node.parent.index
      res["action_from_parent"][i] = node.action_from_parent
    for a, c in node.children.items():
      res["children_index"][i, a] = c.index
      res["children_visits"][i, a] = c.visits
      res["children_values"][i, a] = c.value
      res["children_rewards"][i, a] = c.reward
      res["children_discounts"][i, a] = c.discount
  return ReferenceResult(
      root_visits=root_visits, root_value=root.value,
      root_qvalues=root.qvalues(), action_weights=action_weights,
      action=action, action_is_unique=bool(action_is_unique),
      leaf_edges=leaf_edges, min_margin=cond.min_margin,
      min_spread=cond.min_spread, **res)


def reference_search(problem: Any, b: int, root_fn_outputs: Any = None, *,
                     policy: str, num_simulations: int,
                     max_depth: Optional[int] = None,
                     invalid_actions: Optional[np.ndarray] = None,
                     **kwargs) -> ReferenceResult:
  """Searches tree ``b`` of a :class:`tests.mcts.problems.Problem`.

  Args:
    problem: provides ``np_step(embedding, action)`` (and ``np_root(b)``).
    b: batch index.
    root_fn_outputs: optional ``RootFnOutput`` (mctx's or mcts') whose row
      ``b`` is used as the root; default: the problem's own root ``b``.
    policy, num_simulations, max_depth: see :func:`search_one`.
    invalid_actions: optional ``[B, A]`` mask (row ``b`` is used).
    **kwargs: forwarded to :func:`search_one`.
  """
  if root_fn_outputs is None:
    logits, value, emb = problem.np_root(b)
  else:
    logits = np.asarray(root_fn_outputs.prior_logits, np.float64)[b]
    value = float(np.asarray(root_fn_outputs.value, np.float64)[b])
    emb = int(np.asarray(root_fn_outputs.embedding)[b])
  inv = None if invalid_actions is None else np.asarray(invalid_actions)[b]
  return search_one(logits, value, emb, problem.np_step, policy=policy,
                    num_simulations=num_simulations, max_depth=max_depth,
                    invalid_actions=inv, **kwargs)


def reference_search_batch(problem: Any, **kwargs) -> List[ReferenceResult]:
  """Runs :func:`reference_search` on every tree of ``problem``.

  ``invalid_actions`` defaults to the problem's own mask.
  """
  kwargs.setdefault("invalid_actions", problem.invalid_actions)
  return [reference_search(problem, b, **kwargs)
          for b in range(problem.batch_size)]


def stack(results: Sequence[ReferenceResult], field: str) -> np.ndarray:
  """Stacks one field of per-tree results into a ``[B, ...]`` array."""
  return np.stack([np.asarray(getattr(r, field)) for r in results])


# -----------------------------------------------------------------------------
# Comparing a JAX PolicyOutput (mctx's or mcts') with reference results
# -----------------------------------------------------------------------------

def log_softmax(logits: np.ndarray) -> np.ndarray:
  """Normalised logits along the last axis, in float64."""
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


EXACT_FIELDS = ("node_visits", "parents", "action_from_parent",
                "children_index", "children_visits")
# Float fields of the tree, compared only on nodes that exist.
FLOAT_NODE_FIELDS = ("node_values", "raw_values")
FLOAT_EDGE_FIELDS = ("children_values", "children_rewards",
                     "children_discounts", "children_prior_logits")


def assert_policy_output_matches(output: Any, refs: Sequence[ReferenceResult],
                                 *, rtol: float = 1e-4, atol: float = 1e-4,
                                 check_action: bool = False,
                                 label: str = "") -> None:
  """Asserts that a ``PolicyOutput`` agrees with per-tree reference results.

  Compares the tree topology and counts exactly, node values / raw values /
  edge statistics on existing nodes, root value / Q-values / visit counts
  from ``search_tree.summary()`` and ``search_tree.qvalues``, and the policy's
  ``action_weights``. With ``check_action`` it also compares
  ``output.action`` on the trees whose reference action is unique.
  """
  tree = output.search_tree
  num_nodes = refs[0].node_visits.shape[0]
  batch = len(refs)
  got_visits = np.asarray(tree.node_visits)
  assert got_visits.shape == (batch, num_nodes), (
      f"{label}: node_visits shape {got_visits.shape}, expected "
      f"{(batch, num_nodes)}")
  exists = stack(refs, "node_visits") > 0

  for field in EXACT_FIELDS:
    np.testing.assert_array_equal(
        np.asarray(getattr(tree, field)), stack(refs, field),
        err_msg=f"{label}: {field}")
  for field in FLOAT_NODE_FIELDS:
    got = np.asarray(getattr(tree, field), np.float64)
    np.testing.assert_allclose(
        got[exists], stack(refs, field)[exists], rtol=rtol, atol=atol,
        err_msg=f"{label}: {field}")
  for field in FLOAT_EDGE_FIELDS:
    got = np.asarray(getattr(tree, field), np.float64)
    want = stack(refs, field)
    if field == "children_prior_logits":  # defined for every action
      # The same policy: logits are equal up to a constant per node.
      got, want = log_softmax(got), log_softmax(want)
    else:
      got = np.where(stack(refs, "children_index") >= 0, got, 0.0)
    np.testing.assert_allclose(
        got[exists], want[exists], rtol=rtol, atol=atol,
        err_msg=f"{label}: {field}")

  summary = tree.summary()
  np.testing.assert_array_equal(
      np.asarray(summary.visit_counts), stack(refs, "root_visits"),
      err_msg=f"{label}: summary.visit_counts")
  np.testing.assert_allclose(
      np.asarray(summary.value, np.float64), stack(refs, "root_value"),
      rtol=rtol, atol=atol, err_msg=f"{label}: summary.value")
  np.testing.assert_allclose(
      np.asarray(summary.qvalues, np.float64), stack(refs, "root_qvalues"),
      rtol=rtol, atol=atol, err_msg=f"{label}: summary.qvalues")
  root_idx = np.zeros(batch, np.int32)
  np.testing.assert_allclose(
      np.asarray(tree.qvalues(root_idx), np.float64),
      stack(refs, "root_qvalues"), rtol=rtol, atol=atol,
      err_msg=f"{label}: qvalues(root)")
  np.testing.assert_allclose(
      np.asarray(output.action_weights, np.float64),
      stack(refs, "action_weights"), rtol=rtol, atol=atol,
      err_msg=f"{label}: action_weights")

  if check_action:
    got_action = np.asarray(output.action)
    for b, r in enumerate(refs):
      if r.action_is_unique:
        assert int(got_action[b]) == r.action, (
            f"{label}: tree {b}: action {int(got_action[b])} != reference "
            f"{r.action}")
