"""The CPU's lowering of a search against the accelerators' lowering run on
the CPU: does the loop-free backup along the recorded path pay here?

The accelerators' lowering (forced by
`mcts.lowering.platforms.forced_platform`) records the walk's path and
backs up all levels at once; the CPU's walks without recording and backs up
level by level (`mcts/lowering/cpu_backup.py`), and reads large trees' rows
through buffers (`mcts/lowering/cpu_splits.py`). Both take one tree level
per walk iteration here, so that the walks differ only by the path and the
buffers. Times are interleaved medians; the ratio is
accelerator / CPU time. On 2 shared cores (tiny model) it was 1.5-4.5x in 9
of 10 cells (0.84x for pUCT, B=1, A=362, 256 simulations): the backup's
static bound costs work on every level a path could have, the loop only
the levels there are.

  python -m benchmarks.path_backup --cells muzero,1,16,64 gumbel,256,16,64
"""
import argparse
import contextlib

import jax

import mcts
from benchmarks import common
from benchmarks import models
from benchmarks import throughput
from mcts.lowering import platforms

CELLS = [f"{p},{b},{a},{s}" for p in ("muzero", "gumbel")
         for b in (1, 16, 256) for a in (16, 362) for s in (64, 256)]


def bench_cell(cell, repeats, seed):
  model = throughput.get_model(cell.model, cell.actions, seed)
  root_key, warm_key, repeat_key = jax.random.split(
      jax.random.PRNGKey(seed), 3)
  root = models.root_output(mcts, model, root_key, cell.batch)
  runs = {}
  for name, platform in (("cpu", None), ("path", "default")):
    jax.clear_caches()
    fn = throughput.search_fn(mcts, cell, model)
    saved = dict(platforms.LEVELS_PER_ITERATION)
    platforms.LEVELS_PER_ITERATION["default"] = 1
    try:
      with (contextlib.nullcontext() if platform is None
            else platforms.forced_platform(platform)):
        compiled, _ = common.compile_timed(fn, model.params, warm_key, root)
    finally:
      platforms.LEVELS_PER_ITERATION.update(saved)
    run = lambda k, c=compiled: c(model.params, k, root)
    jax.block_until_ready(run(warm_key))
    runs[name] = run
  return throughput.interleaved_medians(runs, repeat_key, repeats)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--cells", nargs="+", default=CELLS,
                 help="policy,batch,actions,simulations")
  p.add_argument("--model", default="tiny")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  rows = []
  for spec in args.cells:
    policy, batch, actions, sims = spec.split(",")
    cell = throughput.Cell(args.model, policy, int(batch), int(actions),
                           int(sims))
    t = bench_cell(cell, args.repeats, args.seed)
    rows.append([cell.label(), f"{t['cpu'] * 1e3:.1f}",
                 f"{t['path'] * 1e3:.1f}", f"{t['path'] / t['cpu']:.2f}"])
    print(" | ".join(rows[-1]), flush=True)
  print(common.format_table(["cell", "cpu ms", "path ms", "path / cpu"],
                            rows))


if __name__ == "__main__":
  main()
