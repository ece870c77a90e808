"""Kernel launches and host round trips per simulation, read from the HLO.

For both policies and both walks (the generic one and the Pallas kernel),
lowers a jitted policy for CUDA (on any machine: Pallas lowers to Triton IR
at that stage) and for the CPU, compiles it for the CPU, and counts inside
the loop over simulations:
  * `while` loops with a data-dependent trip count: on a GPU each iteration
    reads its condition on the host (a round trip), unless XLA records the
    loop as a command buffer;
  * `while` loops with a known trip count (no round trip);
  * custom calls (Triton kernels), conditionals;
  * the operations of the simulation loop's body outside its inner loops,
    and per iteration of each inner loop: in the compiled CPU program these
    are its kernels (fusions and unfused operations); in a lowered program,
    XLA's operations before fusion.

  python -m benchmarks.launch_count [--out benchmarks/results/launch_count.json]
"""
import argparse
import contextlib
import json
import re
import sys
from typing import Dict, List

import jax

import mcts
from benchmarks import common
from benchmarks import models
from mcts.lowering import walks

# A distinctive simulation count: the loop whose condition compares with it
# is the simulation loop.
NUM_SIMULATIONS = 37
FREE_OPS = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast",
            "after-all", "copy-start", "copy-done", "opt-barrier"}
CONTROL_OPS = {"while", "conditional", "call"}


def parse_hlo(text: str) -> Dict[str, List[str]]:
  """HLO module text -> {computation name: its instruction lines}."""
  computations, name = {}, None
  for line in text.splitlines():
    if line.rstrip().endswith("{") and not line.startswith(" "):
      name = line.replace("ENTRY ", "").split()[0].lstrip("%")
      computations[name] = []
    elif line.startswith("}"):
      name = None
    elif name is not None and " = " in line:
      computations[name].append(line.strip())
  return computations


def opcode(line: str) -> str:
  rest = line.split(" = ", 1)[1]
  if rest.startswith("("):  # A tuple type: skip its balanced parentheses.
    depth = 0
    for i, c in enumerate(rest):
      depth += {"(": 1, ")": -1}.get(c, 0)
      if depth == 0:
        rest = rest[i + 1:]
        break
  else:
    rest = rest.split(" ", 1)[1]
  return re.match(r"\s*([\w\-]+)", rest).group(1)


def called(line: str, *attrs: str) -> List[str]:
  names = []
  for attr in attrs:
    m = re.search(attr + r"=\{?([^}]*?)(?:\}|,\s*\w+=|$)", line)
    if m:
      names += [n.strip().lstrip("%") for n in m.group(1).split(",")
                if n.strip()]
  return names


def trip_count_known(computations, line: str) -> bool:
  """A compiled loop carries its known trip count; a lowered one is known
  when its condition compares a counter with a constant."""
  if "known_trip_count" in line:
    return True
  cond = [l for l in computations.get(called(line, "condition")[0], [])
          if opcode(l) not in ("parameter", "get-tuple-element")]
  return (len(cond) == 2 and opcode(cond[0]) == "constant"
          and "direction=LT" in cond[1])


def count(computations, name: str) -> dict:
  """Counts in computation `name` (descending into calls and conditional
  branches): kernels at this level, loops, custom calls, conditionals; and
  for each inner loop its own counts per iteration."""
  out = dict(kernels=0, custom_calls=[], conditionals=0,
             loops_unknown_trip=0, loops_known_trip=0, inner_loops=[])
  for line in computations.get(name, []):
    op = opcode(line)
    if op == "while":
      known = trip_count_known(computations, line)
      out["loops_known_trip" if known else "loops_unknown_trip"] += 1
      inner = count(computations, called(line, "body")[0])
      out["inner_loops"].append(dict(inner, known_trip=known))
    elif op in ("conditional", "call"):
      out["conditionals"] += op == "conditional"
      for branch in called(line, "branch_computations", "true_computation",
                           "false_computation", "to_apply"):
        sub = count(computations, branch)
        for key in ("kernels", "conditionals", "loops_unknown_trip",
                    "loops_known_trip"):
          out[key] += sub[key]
        out["custom_calls"] += sub["custom_calls"]
        out["inner_loops"] += sub["inner_loops"]
    elif op == "custom-call":
      out["kernels"] += 1
      m = re.search(r'custom_call_target="([^"]+)"', line)
      out["custom_calls"].append(m.group(1) if m else "?")
    elif op not in FREE_OPS:
      out["kernels"] += 1
  return out


def simulation_loop(computations) -> str:
  """The body of the loop over `NUM_SIMULATIONS` simulations."""
  for lines in computations.values():
    for line in lines:
      if opcode(line) != "while":
        continue
      cond = computations.get(called(line, "condition")[0], [])
      if (f'"n":"{NUM_SIMULATIONS}"' in line
          or any(f"constant({NUM_SIMULATIONS})" in l for l in cond)):
        return called(line, "body")[0]
  raise ValueError("no loop over the simulations found")


def policy_fn(policy: str, model):
  recurrent_fn = models.recurrent_fn(mcts, model)

  def fn(params, key, root):
    return getattr(mcts, policy)(params, key, root, recurrent_fn,
                                 num_simulations=NUM_SIMULATIONS)
  return fn


def measure(policy: str, walk: str, batch: int, actions: int,
            platforms=("cuda", "cpu")) -> dict:
  """Counts for one policy and walk ("generic" or "kernel"), by platform
  and stage: "<platform>_lowered" always, "<platform>_compiled" where this
  machine has that platform (compiling for CUDA also compiles the Triton
  kernel)."""
  model = models.tiny_model(actions)
  root = models.root_output(mcts, model, jax.random.PRNGKey(0), batch)
  key = jax.random.PRNGKey(1)
  result = {}
  for platform in platforms:
    mode = dict(generic="never", kernel="always")[walk]
    interpret = False
    if platform == "cpu" and walk == "kernel":
      mode, interpret = "always", True  # The interpreter: for reference.
    with walks.walk_kernel(mode, interpret=interpret):
      traced = jax.jit(policy_fn(policy, model)).trace(model.params, key,
                                                       root)
      stages = {"lowered": traced.lower(
          lowering_platforms=(platform,)).as_text(dialect="hlo")}
      device = _local_device(platform)
      if device is not None:
        with jax.default_device(device):
          stages["compiled"] = jax.jit(policy_fn(policy, model)).lower(
              model.params, key, root).compile().as_text()
    for stage, text in stages.items():
      computations = parse_hlo(text)
      result[f"{platform}_{stage}"] = count(computations,
                                            simulation_loop(computations))
  return result


def _local_device(platform: str):
  """A device of `platform` ("cpu", "cuda", "rocm") here, or None."""
  try:
    devices = jax.devices("gpu" if platform in ("cuda", "rocm") else platform)
  except RuntimeError:
    return None
  return devices[0] if devices else None


def summary_row(policy, walk, platform_stage, c) -> List[str]:
  unknown = [l for l in c["inner_loops"] if not l["known_trip"]]
  per_iteration = ",".join(str(l["kernels"]) for l in c["inner_loops"])
  return [policy, walk, platform_stage, str(c["loops_unknown_trip"]),
          str(c["loops_known_trip"]), str(len(c["custom_calls"])),
          str(c["conditionals"]), str(c["kernels"]), per_iteration or "-",
          str(len(unknown))]


HEADER = ["policy", "walk", "HLO", "loops ?trip", "loops known",
          "custom calls", "conds", "ops (body)", "ops/iter (inner)",
          "round-trip loops"]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--actions", type=int, default=16)
  p.add_argument("--out", default="benchmarks/results/launch_count.json")
  args = p.parse_args(argv)
  results, rows = [], []
  for policy in ("muzero_policy", "gumbel_muzero_policy"):
    for walk in ("generic", "kernel"):
      counts = measure(policy, walk, args.batch, args.actions)
      results.append(dict(policy=policy, walk=walk, counts=counts))
      for stage, c in counts.items():
        rows.append(summary_row(policy, walk, stage, c))
  print(common.format_table(HEADER, rows))
  print()
  print(common.format_table(HEADER, rows, markdown=True))
  if args.out:
    common.write_json(args.out, dict(
        jax_version=jax.__version__, batch=args.batch, actions=args.actions,
        num_simulations=NUM_SIMULATIONS, results=results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
