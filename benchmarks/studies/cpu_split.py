"""What XLA's CPU compiler's splitting of small operations costs a loop.

XLA's CPU compiler splits an I/O-bound operation over the cores (its
`ParallelTaskAssigner`) when the operation's estimated bytes accessed reach
512 KiB. For a gather or a scatter inside a fusion the estimate is the whole
array it reads or writes, not the few numbers it touches: a search that
reads a row of a `[B, N, A]` tree array per level is split over threads
once the array reaches 512 KiB, and every split costs a hand-off between
threads. This times one `fori_loop` iteration of the search's basic step,
a gather of one row per tree and a scatter of one element per tree, for
tree arrays below and above that size, and counts the split operations
(`outer_dimension_partitions`) in the compiled program. With one core
(`--cpu-threads 1`) nothing is split.

  python -m benchmarks.studies.cpu_split
  python -m benchmarks.studies.cpu_split --cpu-threads 1
"""
import argparse
import time

import jax
import jax.numpy as jnp

from benchmarks import common

ITERATIONS = 1000


def row_gather_scatter_loop(batch_size: int, num_nodes: int,
                            num_actions: int):
  """A jitted function of a `[B, N, A]` array that runs ITERATIONS steps of
  "gather each tree's row `[B, A]` at its node, add 1 at its argmax,
  move to another node"."""
  rows = jnp.arange(batch_size)

  def step(i, carry):
    array, node = carry
    action = jnp.argmax(array[rows, node], axis=-1)
    array = array.at[rows, node, action].add(
        1.0, mode="promise_in_bounds", unique_indices=True)
    return array, (node * 7 + action + i) % num_nodes

  def run(array):
    node = jnp.zeros(batch_size, jnp.int32)
    return jax.lax.fori_loop(0, ITERATIONS, step, (array, node))[0]

  return jax.jit(run, donate_argnums=0)


def bench(batch_size, num_nodes, num_actions, repeats):
  """(microseconds per iteration, split operations in the program)."""
  shape = (batch_size, num_nodes, num_actions)
  compiled = row_gather_scatter_loop(*shape).lower(
      jax.ShapeDtypeStruct(shape, jnp.float32)).compile()
  splits = compiled.as_text().count("outer_dimension_partitions")
  times = []
  for _ in range(repeats + 1):  # The first run warms up.
    array = jnp.zeros(shape, jnp.float32)
    start = time.perf_counter()
    jax.block_until_ready(compiled(array))
    times.append(time.perf_counter() - start)
  return common.median(times[1:]) / ITERATIONS * 1e6, splits


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cases", default="16,257,16 16,801,16 16,3000,16 "
                      "256,17,16 256,65,16",
                      help="space-separated B,N,A triples: batch, nodes, "
                      "actions (default: B=16 A=16 arrays of "
                      "257 KiB, 801 KiB and 3 MiB; B=256 A=16 of 272 KiB "
                      "and 1 MiB)")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--cpu-threads", type=int, default=None,
                      help="pin the process to this many cores first")
  args = parser.parse_args()
  if args.cpu_threads is not None:
    common.pin_to_cores(args.cpu_threads)
  rows = []
  for case in args.cases.split():
    batch_size, num_nodes, num_actions = map(int, case.split(","))
    micros, splits = bench(batch_size, num_nodes, num_actions, args.repeats)
    rows.append([str(batch_size), str(num_nodes), str(num_actions),
                 common.fmt_bytes(batch_size * num_nodes * num_actions * 4),
                 str(splits), f"{micros:.2f}"])
  print(common.format_table(
      ["B", "N", "A", "array", "split ops", "us / iteration"], rows))


if __name__ == "__main__":
  main()
