"""The least overhead any level-by-level search could have on a cell.

Every MuZero-style search evaluates its selection rule over all `A` actions
at each node of each simulation's path: that work is in every
implementation, ours and mctx's alike. This script measures it on our own
search's trees and sets it against the model's time, the yardstick of the
overhead that `throughput.py` reports (search time minus the time of as
many `recurrent_fn` calls alone). Per cell:

* `model`: the model alone, `simulations` calls on `B` states (as
  `throughput.py` times it);
* `search`, `overhead`: our search, and its time minus the model's;
* `levels`: the interior levels (below the root) that the search's
  simulations walked, per tree: the sum of `depth - 1` over its nodes. The
  root's selection is left out, which only lowers the floor;
* `level`: the time of one batched level of nothing but that rule: the
  library's interior rule applied to `B` nodes of the searched trees (a
  one-node view of each, as the search reads them), in a `fori_loop` whose
  next nodes depend on the chosen actions; the slope between two loop
  lengths, so that the call's own cost drops out;
* `floor` = levels x level, as a percentage of the model's time: a search
  that did nothing but these evaluations, with every tree's walk exactly
  as deep as it needs to be, would still have this overhead.

  python -m benchmarks.studies.selection_floor --out bench_results/floor.json
  python -m benchmarks.studies.selection_floor --policies muzero --actions 362
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks import throughput
import mcts
from mcts import hashing
from mcts import rules

# The policies' interior rules, with their default numbers.
INTERIOR_RULES = {"muzero": rules.Puct(), "gumbel": rules.GumbelInterior()}
VIEW_FIELDS = mcts.Tree.NODE_FIELDS + mcts.Tree.EDGE_FIELDS


def interior_levels(tree) -> float:
  """Interior selections per tree that built `tree` (a fresh search's):
  the simulation that created a node at depth d selected at the d - 1
  nodes between the root and the node's parent."""
  depth = throughput.node_depths(tree)
  return float(np.maximum(depth - 1, 0).sum(axis=1).mean())


def rule_loop(rule, tree, num_levels: int):
  """`f(rng_key) -> [B]`: `num_levels` batched evaluations of the one-tree
  `rule` at nodes of `tree` `[B, N, ...]`, each level's nodes chosen from
  the previous level's actions."""
  batch_size, num_nodes = tree.node_visits.shape
  rows = jnp.arange(batch_size)
  depth = jnp.ones((batch_size,), jnp.int32)
  at = jnp.zeros((batch_size,), jnp.int32)

  def level(i, carry):
    actions, rng_key = carry
    node = 1 + (actions + i) % (num_nodes - 1)
    view = tree.replace(
        **{f: getattr(tree, f)[rows, node][:, None] for f in VIEW_FIELDS},
        embeddings=None, extra_data=None)
    keys = hashing.derive_keys(rng_key, i * batch_size + rows)
    return jax.vmap(rule)(keys, view, at, depth).astype(jnp.int32), rng_key

  def run(rng_key):
    return jax.lax.fori_loop(0, num_levels, level,
                             (jnp.zeros_like(rows), rng_key))[0]
  return run


def level_seconds(rule, tree, repeats: int, short: int = 32,
                  long: int = 96) -> float:
  """Seconds per batched level of `rule_loop`: the slope between a loop of
  `short` and one of `long` levels, medians of interleaved repeats."""
  timers = {}
  for n in (short, long):
    compiled, _ = common.compile_timed(rule_loop(rule, tree, n),
                                       jax.random.PRNGKey(0))
    common.timed(compiled, jax.random.PRNGKey(0))
    timers[n] = lambda key, c=compiled: common.timed(c, key)[1]
  times = throughput.interleaved_times(
      timers, list(jax.random.split(jax.random.PRNGKey(1), repeats)))
  return (common.median(times[long]) - common.median(times[short])) / (
      long - short)


def measure(cell: throughput.Cell, repeats: int, seed: int) -> dict:
  """The row of one cell (see the module's docstring)."""
  model = throughput.get_model(cell.model, cell.actions, seed)
  root_key, action_key, warm_key, repeat_key = jax.random.split(
      jax.random.PRNGKey(seed), 4)
  _, search_timer, tree = throughput.prepare_search(
      mcts, cell, model, root_key, warm_key, None, {})
  _, model_timer = throughput.prepare_model_loop(model, cell, root_key,
                                                 action_key)
  times = throughput.interleaved_times(
      dict(search=search_timer, model=model_timer),
      list(jax.random.split(repeat_key, repeats)))
  model_s, search_s = (common.median(times[k]) for k in ("model", "search"))
  levels = interior_levels(tree)
  level_s = level_seconds(INTERIOR_RULES[cell.policy], tree, repeats)
  floor_s = levels * level_s
  return dict(label=cell.label(), model_s=model_s, search_s=search_s,
              overhead_pct=100 * (search_s - model_s) / model_s,
              levels=levels, level_s=level_s, floor_s=floor_s,
              floor_pct=100 * floor_s / model_s)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--model", default="mlp", choices=["mlp", "tiny"])
  p.add_argument("--policies", default="muzero,gumbel")
  p.add_argument("--batch", type=int, default=256)
  p.add_argument("--actions", default="16,362")
  p.add_argument("--simulations", type=int, default=64)
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="", help="write the rows as JSON here")
  args = p.parse_args(argv)
  records, rows = [], []
  for policy in args.policies.split(","):
    if policy not in INTERIOR_RULES:
      p.error(f"--policies: expected names from {sorted(INTERIOR_RULES)}, "
              f"got {policy!r}")
    for actions in map(int, args.actions.split(",")):
      cell = throughput.Cell(args.model, policy, args.batch, actions,
                             args.simulations)
      r = measure(cell, args.repeats, args.seed)
      records.append(r)
      rows.append([r["label"], common.fmt(1e3 * r["model_s"]),
                   common.fmt(1e3 * r["search_s"]),
                   common.fmt(r["overhead_pct"], ".0f"),
                   common.fmt(r["levels"], ".1f"),
                   common.fmt(1e6 * r["level_s"], ".1f"),
                   common.fmt(1e3 * r["floor_s"]),
                   common.fmt(r["floor_pct"], ".0f")])
      print(" ".join(rows[-1]), flush=True)
  print(common.format_table(
      ["cell", "model ms", "search ms", "overhead %", "levels / tree",
       "level us", "floor ms", "floor %"], rows))
  if args.out:
    common.write_json(args.out, dict(common.environment(), args=vars(args),
                                     cells=records))
    print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
