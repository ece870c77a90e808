"""The roots' Dirichlet noise: ours (`mcts.dirichlet`) against
`jax.random.dirichlet`, which mctx's `muzero_policy` draws.

Both draw Dir(alpha, ..., alpha) over `A` actions for `B` roots, jitted,
interleaved, median of the repeats; compile times too.

  python -m benchmarks.studies.root_noise
  python -m benchmarks.studies.root_noise --batch 1,256 --actions 362 \
      --out x.json
"""
import argparse

import jax
import jax.numpy as jnp

from benchmarks import common
from benchmarks import throughput
from mcts import dirichlet

SAMPLERS = {
    "mcts": lambda key, alpha, batch, actions: dirichlet.dirichlet(
        key, alpha, (batch, actions)),
    "jax.random": lambda key, alpha, batch, actions: jax.random.dirichlet(
        key, jnp.full([actions], alpha), (batch,)),
}


def run_cell(batch: int, actions: int, alpha: float, repeats: int) -> dict:
  """Compile and run times of both samplers on one cell."""
  key = jax.random.PRNGKey(0)
  compiled, timers, result = {}, {}, dict(batch=batch, actions=actions,
                                          alpha=alpha, samplers={})
  for name, sample in SAMPLERS.items():
    fn = lambda k, sample=sample: sample(k, alpha, batch, actions)
    compiled[name], compile_s = common.compile_timed(fn, key)
    common.timed(compiled[name], key)  # Warm up.
    timers[name] = lambda k, c=compiled[name]: common.timed(c, k)[1]
    result["samplers"][name] = dict(compile_s=compile_s)
  keys = jax.random.split(jax.random.PRNGKey(1), repeats)
  for name, times in throughput.interleaved_times(timers, keys).items():
    result["samplers"][name].update(times_s=times,
                                    time_s=common.median(times))
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", default="1,16,256")
  parser.add_argument("--actions", default="16,362")
  parser.add_argument("--alpha", type=float, default=0.3)
  parser.add_argument("--repeats", type=int, default=21)
  parser.add_argument("--markdown", action="store_true")
  parser.add_argument("--out", default=None, help="JSON results file")
  args = parser.parse_args()
  cells = [run_cell(b, a, args.alpha, args.repeats)
           for b in map(int, args.batch.split(","))
           for a in map(int, args.actions.split(","))]
  rows = []
  for cell in cells:
    ours, theirs = (cell["samplers"][n] for n in ("mcts", "jax.random"))
    rows.append([str(cell["batch"]), str(cell["actions"]),
                 common.fmt(1e3 * ours["time_s"], ".3f"),
                 common.fmt(1e3 * theirs["time_s"], ".3f"),
                 common.fmt(theirs["time_s"] / ours["time_s"], ".1f") + "x",
                 common.fmt(ours["compile_s"]),
                 common.fmt(theirs["compile_s"])])
  print(common.format_table(
      ["B", "A", "mcts ms", "jax.random ms", "ratio", "compile mcts s",
       "compile jax.random s"], rows, markdown=args.markdown))
  if args.out:
    common.write_json(args.out, dict(environment=common.environment(),
                                     cells=cells))


if __name__ == "__main__":
  main()
