"""Compile time of this checkout's policies on the tiny model, 64
simulations, B in {1, 16, 256}, A in {16, 362}; prints JSON {cell: s}.

Compares two checkouts in turn, each in its own processes (no compilation
cache between them), e.g. before and after a refactor:

  git archive OLD | tar -x -C /tmp/old
  for i in 1 2; do for t in /tmp/old .; do
    (cd $t && PYTHONPATH=$t python benchmarks/studies/compile_ab.py \
       muzero,gumbel > /tmp/ab_$(basename $(realpath $t))_$i.json); done; done
"""
import json
import sys

import jax

import mcts
from benchmarks import common
from benchmarks import models
from benchmarks import throughput


def main(policies: str) -> None:
  out = {}
  for policy in policies.split(","):
    for batch in (1, 16, 256):
      for actions in (16, 362):
        cell = throughput.Cell("tiny", policy, batch, actions, 64)
        model = models.tiny_model(actions)
        fn = throughput.search_fn(mcts, cell, model)
        root = models.root_output(mcts, model, jax.random.PRNGKey(0), batch)
        _, seconds = common.compile_timed(fn, model.params,
                                          jax.random.PRNGKey(1), root)
        out[cell.label()] = seconds
  print(json.dumps(out))


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "muzero,gumbel")
