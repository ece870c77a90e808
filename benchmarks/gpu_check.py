"""The accelerator check (issue 16): ours with the walk kernel, ours with the
generic walk, mctx and the model-only floor, on one GPU, in one table.

For each cell (model x policy x batch x actions x simulations) it compiles
and warms up each search and the floor (the same `recurrent_fn` calls in
the same `fori_loop`, `benchmarks/models.py`), then times them interleaved
(median of --repeats). Cells run in order of importance (the MLP at B=256
first: the overhead target) until the time budget is spent; a cell whose
predicted time does not fit is skipped and listed. JSON goes to --out
after every cell.

  python -m benchmarks.gpu_check                         # on a GPU
  python -m benchmarks.gpu_check --quick --platform cpu  # two small cells

On the CPU the kernel runs in Pallas' interpreter (its times mean nothing;
the mode checks that the script works). The kernel column forces the
kernel (`walk_kernel("always")`): searches take it by default only once
`mcts.lowering.walks.KERNEL_MEASURED_ON_GPU` is flipped, in the commit
that adds this script's results showing it correct and faster on a GPU.
"""
import argparse
import itertools
import os
import sys
import time


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--platform", default="gpu", choices=("gpu", "cpu"))
  p.add_argument("--quick", action="store_true",
                 help="two small cells (tiny model, B=4, A=16, 16 sims)")
  p.add_argument("--budget", type=float, default=400.0,
                 help="seconds for all cells (default 400)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--mctx-limit", type=float, default=20.0)
  p.add_argument("--out", default="benchmarks/results/gpu/gpu_check.json")
  return p.parse_args(argv)


def cells(quick: bool):
  """The grid, most important first."""
  from benchmarks.throughput import Cell  # pylint: disable=g-import-not-at-top
  if quick:
    return [Cell("tiny", p, 4, 16, 16) for p in ("muzero", "gumbel")]
  first = [Cell("mlp", p, 256, a, 64) for a in (16, 362)
           for p in ("muzero", "gumbel")]
  rest = [Cell(m, p, b, a, s) for m, s, p, b, a in itertools.product(
      ("tiny", "mlp"), (64, 256), ("muzero", "gumbel"), (1, 16, 256),
      (16, 362))]
  return first + [c for c in rest if c not in first]


def bench_cell(cell, args, walk_modes, mctx, mctx_history):
  """Compiles, warms up and times ours (per walk), mctx and the floor."""
  import jax  # pylint: disable=g-import-not-at-top
  import mcts  # pylint: disable=g-import-not-at-top
  from benchmarks import throughput  # pylint: disable=g-import-not-at-top
  from mcts.lowering import walks  # pylint: disable=g-import-not-at-top
  model = throughput.get_model(cell.model, cell.actions, 0)
  root_key, action_key, warm_key, repeat_key = jax.random.split(
      jax.random.PRNGKey(0), 4)
  record = dict(label=cell.label(), **cell.__dict__, libs={})
  timers, trees = {}, {}
  for name, (mode, interpret) in walk_modes.items():
    try:
      with walks.walk_kernel(mode, interpret=interpret):
        record["libs"][name], timers[name], trees[name] = (
            throughput.prepare_search(mcts, cell, model, root_key, warm_key,
                                      None, None))
    except Exception as e:  # pylint: disable=broad-except
      # E.g. Triton failing to compile the kernel: the other columns
      # still run.
      print(f"  {name} failed: {e!r}"[:3000], file=sys.stderr, flush=True)
      record["libs"][name] = dict(skipped="error", error=repr(e)[:3000])
  if {"kernel", "generic"} <= set(trees):
    record["kernel_vs_generic"] = same_trees(trees["kernel"],
                                             trees["generic"])
  if mctx is not None:
    record["libs"]["mctx"], timer, _ = throughput.prepare_search(
        mctx, cell, model, root_key, warm_key, args.mctx_limit, mctx_history)
    if timer:
      timers["mctx"] = timer
  record["model_compile_s"], timers["model"] = throughput.prepare_model_loop(
      model, cell, root_key, action_key)
  times = throughput.interleaved_times(
      timers, list(jax.random.split(repeat_key, args.repeats)))
  record["model_s"] = min(times.pop("model"))
  for name, lib_times in times.items():
    throughput.add_timings(record["libs"][name], lib_times, cell,
                           record["model_s"])
    record["libs"][name]["over_floor"] = (
        record["libs"][name]["time_s"] / record["model_s"])
  if "mctx" in times:
    for name in set(walk_modes) & set(times):
      record["libs"][name]["mctx_ratio"] = (
          record["libs"]["mctx"]["time_s"] / record["libs"][name]["time_s"])
  return record


def same_trees(a, b):
  """How far the kernel's warm-up tree ``a`` is from the generic walk's
  ``b`` (the same search, same keys): the share of roots whose trees have
  the same shape and visit counts, and the largest value difference among
  those (float rounding may order ties differently, which changes a
  root's tree from there on)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  batch = a.node_visits.shape[0]
  flat = lambda x: np.asarray(x).reshape(batch, -1)
  same = np.all(flat(a.node_visits) == flat(b.node_visits), axis=1)
  same &= np.all(flat(a.children_index) == flat(b.children_index), axis=1)
  diff = np.abs(flat(a.node_values) - flat(b.node_values))[same]
  return dict(roots_identical=float(np.mean(same)),
              max_value_diff=float(diff.max()) if diff.size else None)


HEADER = ["model", "policy", "B", "A", "sims", "kernel ms", "generic ms",
          "mctx ms", "floor ms", "mctx/kernel", "mctx/generic",
          "kernel/floor", "generic/floor", "compile s (k/g/mctx)",
          "kernel = generic"]


def table_row(r):
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  libs = r["libs"]
  get = lambda lib, key, scale=1.0: (libs.get(lib, {}).get(key) and
                                     scale * libs[lib][key])
  ms = lambda lib: (libs.get(lib, {}).get("skipped")
                    or common.fmt(get(lib, "time_s", 1e3), ".1f"))
  compile_s = "/".join(common.fmt(get(lib, "compile_s"), ".1f")
                       for lib in ("kernel", "generic", "mctx"))
  return [r["model"], r["policy"], str(r["batch"]), str(r["actions"]),
          str(r["simulations"]), ms("kernel"), ms("generic"), ms("mctx"),
          common.fmt(1e3 * r["model_s"], ".2f"),
          common.fmt(get("kernel", "mctx_ratio")),
          common.fmt(get("generic", "mctx_ratio")),
          common.fmt(get("kernel", "over_floor")),
          common.fmt(get("generic", "over_floor")), compile_s,
          common.fmt(r.get("kernel_vs_generic", {}).get("roots_identical"),
                     ".2f")]


def main(argv=None):
  args = parse_args(argv)
  if args.platform == "cpu":
    os.environ["JAX_PLATFORMS"] = "cpu"
  import jax  # pylint: disable=g-import-not-at-top
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  if args.platform == "gpu":
    walk_modes = dict(kernel=("always", False), generic=("never", False))
  else:  # The interpreter: correctness of the script, not speed.
    walk_modes = dict(kernel=("always", True), generic=("never", False))
  try:
    import mctx  # pylint: disable=g-import-not-at-top
  except ImportError:
    mctx = None
  env = common.environment()
  print(f"jax {env['jax_version']} on {env['device']}; budget "
        f"{args.budget:g} s", flush=True)
  records, skipped, mctx_history, last_s = [], [], {}, 0.0
  for cell in cells(args.quick):
    left = args.budget - (time.perf_counter() - start)
    # A cell takes about as long as the last one, more with more sims.
    if records and left < 1.5 * last_s * (cell.simulations / 64):
      skipped.append(cell.label())
      continue
    cell_start = time.perf_counter()
    print(f"  {cell.label()}", file=sys.stderr, flush=True)
    records.append(bench_cell(cell, args, walk_modes, mctx, mctx_history))
    for name, lib in records[-1]["libs"].items():
      if lib.get("error"):  # Not retried on the next cells.
        walk_modes.pop(name, None)
    last_s = time.perf_counter() - cell_start
    print("  " + " | ".join(table_row(records[-1])), file=sys.stderr,
          flush=True)
    if args.out:
      common.write_json(args.out, dict(env, args=vars(args), cells=records,
                                       skipped_for_time=skipped))
  if args.out:
    common.write_json(args.out, dict(env, args=vars(args), cells=records,
                                     skipped_for_time=skipped))
  print(common.format_table(HEADER, [table_row(r) for r in records],
                            markdown=True))
  if skipped:
    print(f"skipped for time ({len(skipped)}): " + "; ".join(skipped))
  print(f"total {time.perf_counter() - start:.0f} s; wrote {args.out}")


if __name__ == "__main__":
  main()
