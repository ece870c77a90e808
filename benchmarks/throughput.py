"""Search throughput of `mcts` versus DeepMind's `mctx`, side by side.

Both libraries search identical roots with identical `recurrent_fn`s, in one
process, with their repeats interleaved so that machine noise hits both. Per
cell (model x policy x batch x actions x simulations) and library it records
compile time, median run time, simulations per second, the search tree's
bytes and the overhead over the model alone (the same number of
`recurrent_fn` calls in a jitted `fori_loop`).

  python -m benchmarks.throughput                # the full grid
  python -m benchmarks.throughput --quick        # a small grid (make demo)
  python -m benchmarks.throughput --models mlp --batch 256 --markdown

mctx is optional: without it (or with --no-mctx) only `mcts` runs. An mctx
cell is skipped when its warm-up run exceeds --mctx-limit seconds, when a
smaller cell of the same model and policy did, or when its time extrapolated
from a run with fewer simulations exceeds the limit.
"""
import argparse
import dataclasses
import functools
import itertools
import sys
from typing import Dict, List, Optional

import jax
import numpy as np

import mcts
from benchmarks import common
from benchmarks import models

POLICIES = {"muzero": "muzero_policy", "gumbel": "gumbel_muzero_policy"}
FULL = dict(models="tiny,mlp", policies="muzero,gumbel", batch="1,16,256",
            actions="16,362", simulations="64,256,800", repeats=5,
            mctx_limit=60.0)
QUICK = dict(models="tiny", policies="muzero,gumbel", batch="16",
             actions="16,362", simulations="64,256", repeats=3,
             mctx_limit=5.0)


@dataclasses.dataclass(frozen=True)
class Cell:
  model: str
  policy: str
  batch: int
  actions: int
  simulations: int

  def label(self) -> str:
    return (f"{self.model} {self.policy} B={self.batch} A={self.actions} "
            f"sims={self.simulations}")


def parse_args(argv=None) -> argparse.Namespace:
  """Command line; list options are comma separated. --quick changes the
  defaults of the grid options, explicit options still win."""
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--models", help=f"default {FULL['models']}")
  p.add_argument("--policies", help=f"default {FULL['policies']}")
  p.add_argument("--batch", help=f"default {FULL['batch']}")
  p.add_argument("--actions", help=f"default {FULL['actions']}")
  p.add_argument("--simulations", help=f"default {FULL['simulations']}")
  p.add_argument("--repeats", type=int, help="timed runs per library "
                 f"(median), default {FULL['repeats']}")
  p.add_argument("--mctx-limit", type=float,
                 help="skip mctx cells slower than this many seconds per run,"
                 f" default {FULL['mctx_limit']:g} ({QUICK['mctx_limit']:g}"
                 " with --quick)")
  p.add_argument("--quick", action="store_true",
                 help="small grid: " + " ".join(
                     f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
  p.add_argument("--no-mctx", action="store_true", help="run mcts only")
  p.add_argument("--markdown", action="store_true",
                 help="also print the table as markdown")
  p.add_argument("--cpu-threads", type=int,
                 help="pin the process to this many CPU cores before JAX "
                 "starts, so that XLA's CPU client runs with that many "
                 "threads (both libraries alike); default: all cores")
  p.add_argument("--cpu-small-loop-bytes", type=int,
                 help="before JAX starts, raise XLA's CPU threshold for "
                 "compiling a while loop as one function (bytes touched per "
                 "iteration, default 1024) to this, for both libraries alike")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="bench_results/throughput.json",
                 help="JSON results file ('' to skip)")
  args = p.parse_args(argv)
  for key, default in (QUICK if args.quick else FULL).items():
    if getattr(args, key) is None:
      setattr(args, key, default)
  for key in ("models", "policies"):
    setattr(args, key, getattr(args, key).split(","))
  for key in ("batch", "actions", "simulations"):
    setattr(args, key, sorted(int(x) for x in getattr(args, key).split(",")))
  for name, allowed in (("models", models.MODELS), ("policies", POLICIES)):
    bad = set(getattr(args, name)) - set(allowed)
    if bad:
      p.error(f"unknown {name} {sorted(bad)}; choose from {sorted(allowed)}")
  return args


def load_libraries(no_mctx: bool) -> Dict[str, object]:
  """{'mcts': mcts, 'mctx': mctx}, without mctx if unwanted or missing."""
  libs = {"mcts": mcts}
  if no_mctx:
    print("mctx: not run (--no-mctx)")
    return libs
  try:
    import mctx  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    print(f"mctx: not installed ({e}); running mcts only")
    return libs
  libs["mctx"] = mctx
  return libs


def grid(args) -> List[Cell]:
  """All cells, smaller ones first within each (model, policy)."""
  return [Cell(m, p, b, a, s) for m, p, a, b, s in itertools.product(
      args.models, args.policies, args.actions, args.batch, args.simulations)]


@functools.lru_cache(maxsize=None)
def get_model(name: str, num_actions: int, seed: int) -> models.Model:
  return models.MODELS[name](num_actions, seed)


def search_fn(module, cell: Cell, model: models.Model):
  """`fn(params, rng_key, root) -> PolicyOutput` of `module`'s policy."""
  policy = getattr(module, POLICIES[cell.policy])
  recurrent_fn = models.recurrent_fn(module, model)
  def fn(params, rng_key, root):
    return policy(params, rng_key, root, recurrent_fn,
                  num_simulations=cell.simulations)
  return fn


def mctx_skip_reason(cell: Cell, history: Dict[Cell, Optional[float]],
                     limit: float) -> Optional[str]:
  """Why to skip mctx on `cell` a priori, from the mctx runs so far
  (`history`: cell -> seconds per run, None if over the limit or skipped).

  Skips if a smaller cell of the same model and policy was over the limit,
  or if the time of a run with the same batch and actions but fewer
  simulations, scaled quadratically in simulations (pUCT trees deepen as
  they grow, so a search costs up to O(simulations^2)), is over the limit.
  """
  for done, seconds in history.items():
    if (done.model, done.policy) != (cell.model, cell.policy):
      continue
    if not (done.batch <= cell.batch and done.actions <= cell.actions
            and done.simulations <= cell.simulations):
      continue
    if seconds is None:
      return f"mctx > {limit:g} s on a smaller cell"
    if (done.batch, done.actions) == (cell.batch, cell.actions):
      estimate = seconds * (cell.simulations / done.simulations) ** 2
      if estimate > limit:
        return f"mctx est. {estimate:.0f} s > {limit:g} s"
  return None


def node_depths(tree) -> np.ndarray:
  """`[B, N]` depth of every node of `tree` (0 for the root and unused
  nodes; parents come before their children)."""
  parents = np.asarray(tree.parents)
  depth = np.zeros(parents.shape, np.int64)
  rows = np.arange(parents.shape[0])
  for n in range(1, parents.shape[1]):
    used = parents[:, n] >= 0
    depth[:, n] = np.where(used, depth[rows, parents[:, n]] + 1, 0)
  return depth


def mean_max_depth(tree) -> float:
  """Mean over the batch of the deepest node's depth."""
  return float(node_depths(tree).max(axis=1).mean())


def bench_cell(cell: Cell, libs, args, mctx_history) -> dict:
  """Compiles, warms up and times every library and the model alone on one
  cell, repeats interleaved; returns the cell's record."""
  model = get_model(cell.model, cell.actions, args.seed)
  root_key, action_key, warm_key, repeat_key = jax.random.split(
      jax.random.PRNGKey(args.seed), 4)
  record = dict(dataclasses.asdict(cell), label=cell.label(), libs={})
  timers = {}
  for name, module in libs.items():
    limit = args.mctx_limit if name == "mctx" else None
    record["libs"][name], timer, tree = prepare_search(
        module, cell, model, root_key, warm_key, limit, mctx_history)
    if timer:
      timers[name] = timer
    if name == "mcts":
      record["depth"] = mean_max_depth(tree)
  record["model_compile_s"], timers["model"] = prepare_model_loop(
      model, cell, root_key, action_key)

  times = interleaved_times(
      timers, list(jax.random.split(repeat_key, args.repeats)))
  record["model_times_s"] = times.pop("model")
  record["model_s"] = common.median(record["model_times_s"])
  for name, lib_times in times.items():
    add_timings(record["libs"][name], lib_times, cell, record["model_s"])
  if len(times) == 2:
    record["ratio"] = record["libs"]["mctx"]["time_s"] / (
        record["libs"]["mcts"]["time_s"])
  return record


def prepare_search(module, cell, model, root_key, warm_key, limit,
                   history):
  """Sizes, compiles and warms up `module`'s policy on `cell`.

  With a `limit` (mctx), the cell may be skipped a priori or after a warm-up
  run over the limit, and `history` records its time (None if skipped).
  Returns (record, timer: rng_key -> seconds or None if skipped, the tree of
  the warm-up run or None).
  """
  fn = search_fn(module, cell, model)
  root = models.root_output(module, model, root_key, cell.batch)
  shapes = jax.eval_shape(fn, model.params, warm_key, root)
  lib = dict(tree_bytes=common.tree_nbytes(shapes.search_tree), skipped=None)
  if limit is not None:
    lib["skipped"] = mctx_skip_reason(cell, history, limit)
    if lib["skipped"]:
      history[cell] = None
      return lib, None, None
  compiled, lib["compile_s"] = common.compile_timed(
      fn, model.params, warm_key, root)
  out, lib["warmup_s"] = common.timed(compiled, model.params, warm_key, root)
  if limit is not None:
    over = lib["warmup_s"] > limit
    history[cell] = None if over else lib["warmup_s"]
    if over:
      lib["skipped"] = f"mctx > {limit:g} s"
      return lib, None, out.search_tree
  timer = lambda key: common.timed(compiled, model.params, key, root)[1]
  return lib, timer, out.search_tree


def prepare_model_loop(model, cell, root_key, action_key):
  """Compiles and warms up the model alone: `cell.simulations` recurrent
  calls on random actions. Returns (compile seconds, timer)."""
  embedding = model.init_embedding(root_key, cell.batch)
  actions = jax.random.randint(
      action_key, (cell.simulations, cell.batch), 0, cell.actions)
  model_args = (model.params, embedding, actions)
  compiled, compile_s = common.compile_timed(
      models.model_loop(model, cell.simulations), *model_args)
  common.timed(compiled, *model_args)
  return compile_s, lambda key: common.timed(compiled, *model_args)[1]


def interleaved_times(timers, keys) -> Dict[str, List[float]]:
  """Runs every timer once per key, alternating the order between repeats."""
  times = {name: [] for name in timers}
  for i, key in enumerate(keys):
    order = list(timers) if i % 2 == 0 else list(reversed(timers))
    for name in order:
      times[name].append(timers[name](key))
  return times


def interleaved_medians(runs, repeat_key, repeats) -> Dict[str, float]:
  """{name: median seconds} of `repeats` interleaved runs of each
  `runs[name](key)`, a compiled search of a key."""
  timers = {name: (lambda key, run=run: common.timed(run, key)[1])
            for name, run in runs.items()}
  times = interleaved_times(timers,
                            list(jax.random.split(repeat_key, repeats)))
  return {name: common.median(t) for name, t in times.items()}


def add_timings(lib: dict, times: List[float], cell: Cell, model_s: float):
  """Median time, simulations/s and overhead over the model alone."""
  lib["times_s"] = times
  lib["time_s"] = common.median(times)
  lib["sims_per_s"] = cell.batch * cell.simulations / lib["time_s"]
  lib["overhead_s"] = lib["time_s"] - model_s
  lib["overhead_pct"] = 100.0 * lib["overhead_s"] / model_s


HEADER = ["model", "policy", "B", "A", "sims", "depth", "mcts ms", "mctx ms",
          "ratio",
          "mcts sims/s", "mctx sims/s", "compile mcts s", "compile mctx s",
          "model ms", "ovh mcts %", "ovh mctx %", "tree mcts", "tree mctx"]


def table_row(r: dict) -> List[str]:
  """One table row; a skipped mctx shows its reason in the mctx ms column."""
  mcts_, mctx_ = r["libs"]["mcts"], r["libs"].get("mctx", {})
  ms = lambda lib: (lib["skipped"] if lib.get("skipped")
                    else common.fmt(lib.get("time_s") and 1e3 * lib["time_s"]))
  return [r["model"], r["policy"], str(r["batch"]), str(r["actions"]),
          str(r["simulations"]), common.fmt(r.get("depth"), ".0f"),
          ms(mcts_), ms(mctx_),
          common.fmt(r.get("ratio")),
          common.fmt(mcts_.get("sims_per_s"), ",.0f"),
          common.fmt(mctx_.get("sims_per_s"), ",.0f"),
          common.fmt(mcts_.get("compile_s")),
          common.fmt(mctx_.get("compile_s")),
          common.fmt(1e3 * r["model_s"]),
          common.fmt(mcts_.get("overhead_pct"), ".0f"),
          common.fmt(mctx_.get("overhead_pct"), ".0f"),
          common.fmt_bytes(mcts_.get("tree_bytes")),
          common.fmt_bytes(mctx_.get("tree_bytes"))]


def summarize(records: List[dict]) -> dict:
  """Per model: geometric-mean mctx/mcts ratio and the worst cell, plus the
  overhead target (mlp, batch 256: mcts overhead <= 25% of the model)."""
  summary = {}
  for model in sorted({r["model"] for r in records}):
    rows = [r for r in records if r["model"] == model and "ratio" in r]
    entry = dict(cells_compared=len(rows),
                 geomean_ratio=common.geomean(r["ratio"] for r in rows))
    if rows:
      worst = min(rows, key=lambda r: r["ratio"])
      entry["min_ratio"] = worst["ratio"]
      entry["min_ratio_cell"] = worst["label"]
    summary[model] = entry
  target = [r["libs"]["mcts"]["overhead_pct"] for r in records
            if r["model"] == "mlp" and r["batch"] == 256]
  if target:
    summary["mlp_b256_max_overhead_pct"] = max(target)
    summary["mlp_b256_overhead_target_met"] = max(target) <= 25.0
  return summary


def print_summary(summary: dict):
  for model, entry in summary.items():
    if not isinstance(entry, dict):
      continue
    if not entry["cells_compared"]:
      print(f"{model}: no cell with both libraries")
      continue
    print(f"{model}: geomean mctx/mcts = {entry['geomean_ratio']:.2f}x over "
          f"{entry['cells_compared']} cells; min {entry['min_ratio']:.2f}x "
          f"({entry['min_ratio_cell']})")
  if "mlp_b256_max_overhead_pct" in summary:
    ok = "met" if summary["mlp_b256_overhead_target_met"] else "NOT met"
    print(f"target mlp B=256 mcts overhead <= 25% of the model: {ok} "
          f"(max {summary['mlp_b256_max_overhead_pct']:.0f}%)")


def main(argv=None):
  args = parse_args(argv)
  if args.cpu_threads:
    common.pin_to_cores(args.cpu_threads)
  if args.cpu_small_loop_bytes is not None:
    common.set_cpu_small_loop_bytes(args.cpu_small_loop_bytes)
  libs = load_libraries(args.no_mctx)
  env = common.environment()
  print(f"jax {env['jax_version']} on {env['device']} "
        f"({env['cpu_threads']} CPU threads); repeats {args.repeats}, mctx "
        f"limit {args.mctx_limit:g} s", flush=True)
  records, mctx_history = [], {}
  cells = grid(args)
  for i, cell in enumerate(cells):
    print(f"[{i + 1}/{len(cells)}] {cell.label()}", file=sys.stderr, flush=True)
    records.append(bench_cell(cell, libs, args, mctx_history))
    # Written after every cell, so that a long grid cut short keeps its
    # results.
    write_json(args, libs, env, records)
  rows = [table_row(r) for r in records]
  print(common.format_table(HEADER, rows))
  print_summary(summarize(records))
  if args.markdown:
    print()
    print(common.format_table(HEADER, rows, markdown=True))
  if args.out:
    print(f"wrote {args.out}")


def write_json(args, libs, env, records):
  """The results so far, with the summary, to `args.out` (if set)."""
  if not args.out:
    return
  mctx_version = getattr(libs.get("mctx"), "__version__", None)
  common.write_json(args.out, dict(
      env, mctx_version=mctx_version, args=vars(args),
      summary=summarize(records), cells=records))


if __name__ == "__main__":
  main()
