"""What one call of a jitted search costs before its simulations.

A policy returns a `PolicyOutput` whose tree is a dozen or more arrays, and
each returned array costs the caller an output buffer and a Python array.
For each library this times, on one cell, interleaved (median of repeats):

* `outputs`: a jitted function that returns zeros shaped like the
  library's `PolicyOutput` (no search at all);
* `one output`: one that returns a single `[B]` array;
* the search itself with 1 simulation and with `--simulations`.

The difference between the first two is the price of handing back the
tree, which both libraries pay on every call.

  python -m benchmarks.studies.call_cost
  python -m benchmarks.studies.call_cost --policy muzero --batch 16 \
      --actions 362
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks import models
from benchmarks import throughput


def timers(module, cell, model, rng_key):
  """{name: rng_key -> seconds} for `module` on `cell`, and the number of
  arrays in its `PolicyOutput`."""
  root = models.root_output(module, model, rng_key, cell.batch)
  search = throughput.search_fn(module, cell, model)
  one_simulation = throughput.search_fn(
      module, throughput.Cell(cell.model, cell.policy, cell.batch,
                              cell.actions, 1), model)
  shapes = jax.eval_shape(search, model.params, rng_key, root)
  fns = {
      "outputs": lambda p, k, r: jax.tree.map(
          lambda s: jnp.zeros(s.shape, s.dtype), shapes),
      "one output": lambda p, k, r: r.value + 1,
      "1 simulation": one_simulation,
      f"{cell.simulations} simulations": search,
  }
  result = {}
  for name, fn in fns.items():
    compiled, _ = common.compile_timed(fn, model.params, rng_key, root)
    common.timed(compiled, model.params, rng_key, root)  # Warm-up.
    result[name] = (lambda key, c=compiled: common.timed(
        c, model.params, key, root)[1])
  return result, len(jax.tree_util.tree_leaves(shapes))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--policy", default="gumbel",
                 choices=sorted(throughput.POLICIES))
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--actions", type=int, default=16)
  p.add_argument("--simulations", type=int, default=64)
  p.add_argument("--repeats", type=int, default=51)
  args = p.parse_args(argv)
  cell = throughput.Cell("tiny", args.policy, args.batch, args.actions,
                         args.simulations)
  model = throughput.get_model("tiny", args.actions, 0)
  rng_key = jax.random.PRNGKey(0)
  libs = throughput.load_libraries(no_mctx=False)
  all_timers = {}
  for lib, module in libs.items():
    lib_timers, num_outputs = timers(module, cell, model, rng_key)
    print(f"{lib}: PolicyOutput has {num_outputs} arrays")
    all_timers.update({(lib, name): t for name, t in lib_timers.items()})
  times = throughput.interleaved_times(
      all_timers, list(jax.random.split(rng_key, args.repeats)))
  rows = [[lib, name, common.fmt(1e3 * np.median(ts), ".3f"),
           common.fmt(1e3 * np.min(ts), ".3f")]
          for (lib, name), ts in times.items()]
  print(f"{cell.label()}, {args.repeats} interleaved repeats")
  print(common.format_table(["library", "call", "median ms", "min ms"], rows))


if __name__ == "__main__":
  main()
