"""Search time against the tree levels taken per `while_loop` iteration.

The walk and the backup of `mcts.search` loop over tree levels, and
`mcts.lowering.platforms.LEVELS_PER_ITERATION` sets, per platform, how many
levels one iteration takes (see `while_levels`). This times our policies with each
value on the current default device, next to mctx, interleaved (median of
--repeats), and checks that every value gives the same tree.

  python -m benchmarks.studies.loop_levels --levels 1,2,4,8
"""
import argparse

import jax
import numpy as np

import mcts
from benchmarks import common
from benchmarks import models
from benchmarks import throughput
from mcts.lowering import platforms

CELLS = ("gumbel,1,16,64 gumbel,256,16,64 gumbel,16,362,256 "
         "muzero,1,16,64 muzero,256,16,64 muzero,1,362,256")


def compiled_search(module, cell, model, root, key):
  fn = throughput.search_fn(module, cell, model)
  compiled, _ = common.compile_timed(fn, model.params, key, root)
  return lambda k: compiled(model.params, k, root)


def bench_cell(cell, levels, libs, repeats, seed):
  """{name: median seconds} for mctx and ours with each number of levels;
  raises if two level settings give different trees."""
  model = throughput.get_model(cell.model, cell.actions, seed)
  root_key, warm_key, repeat_key = jax.random.split(jax.random.PRNGKey(seed), 3)
  root = models.root_output(mcts, model, root_key, cell.batch)
  runs, first_tree = {}, None
  for k in levels:
    platforms.LEVELS_PER_ITERATION = dict(cpu=k, default=k)
    run = compiled_search(mcts, cell, model, root, warm_key)
    tree = jax.block_until_ready(run(warm_key)).search_tree
    if first_tree is None:
      first_tree = tree
    elif not all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(first_tree), jax.tree.leaves(tree))):
      raise AssertionError(f"{cell.label()}: levels={k} changed the tree")
    runs[f"levels={k}"] = run
  if "mctx" in libs:
    mctx_root = models.root_output(libs["mctx"], model, root_key, cell.batch)
    run = compiled_search(libs["mctx"], cell, model, mctx_root, warm_key)
    jax.block_until_ready(run(warm_key))
    runs["mctx"] = run
  return throughput.interleaved_medians(runs, repeat_key, repeats)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--levels", default="1,2,4,8")
  p.add_argument("--cells", default=CELLS,
                 help="space-separated policy,batch,actions,simulations")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--no-mctx", action="store_true")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="bench_results/loop_levels.json")
  args = p.parse_args(argv)
  levels = [int(k) for k in args.levels.split(",")]
  libs = throughput.load_libraries(args.no_mctx)
  env = common.environment()
  print(f"jax {env['jax_version']} on {env['device']}", flush=True)
  saved = dict(platforms.LEVELS_PER_ITERATION)
  records = []
  try:
    for spec in args.cells.split():
      policy, batch, actions, sims = spec.split(",")
      cell = throughput.Cell("tiny", policy, int(batch), int(actions),
                             int(sims))
      ms = {k: 1e3 * v for k, v in bench_cell(
          cell, levels, libs, args.repeats, args.seed).items()}
      records.append(dict(label=cell.label(), ms=ms))
      print(cell.label(), "  ".join(f"{k} {v:.2f} ms" for k, v in ms.items()),
            flush=True)
      if args.out:
        common.write_json(args.out, dict(env, cells=records))
  finally:
    platforms.LEVELS_PER_ITERATION = saved
  header = ["cell"] + list(records[0]["ms"]) if records else ["cell"]
  print(common.format_table(header, [
      [r["label"]] + [f"{v:.2f}" for v in r["ms"].values()] for r in records],
      markdown=True))


if __name__ == "__main__":
  main()
