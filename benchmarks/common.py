"""Shared helpers for the benchmarks: timing, sizes, tables, metadata."""
import datetime
import json
import math
import os
import statistics
import sys
import time
from typing import Callable, Iterable, List, Optional, Sequence

import jax
import numpy as np


def compile_timed(fn: Callable, *args):
  """`(compiled, seconds)` for `jax.jit(fn).lower(*args).compile()`."""
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  return compiled, time.perf_counter() - start


def timed(compiled, *args):
  """`(result, seconds)` of one call of `compiled`, waiting for the result."""
  start = time.perf_counter()
  result = jax.block_until_ready(compiled(*args))
  return result, time.perf_counter() - start


def median_seconds(fn: Callable, args: Sequence, repeats: int) -> float:
  """The median over ``repeats`` calls of ``fn(*args)`` (after one call
  that warms up), waiting for each result."""
  jax.block_until_ready(fn(*args))
  return median([timed(fn, *args)[1] for _ in range(repeats)])


def tree_nbytes(pytree) -> int:
  """Total bytes of the arrays (or ShapeDtypeStructs) in `pytree`."""
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
             for x in jax.tree_util.tree_leaves(pytree))


def median(xs: Sequence[float]) -> Optional[float]:
  return statistics.median(xs) if xs else None


def geomean(xs: Iterable[float]) -> Optional[float]:
  xs = list(xs)
  return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def fmt(x, spec: str = ".2f", missing: str = "-") -> str:
  """Formats a number, or `missing` for None; strings pass through."""
  if x is None:
    return missing
  return x if isinstance(x, str) else format(x, spec)


def fmt_bytes(n: Optional[int]) -> str:
  """1536 -> '1.5 KiB'; None -> '-'."""
  if n is None:
    return "-"
  for unit in ("B", "KiB", "MiB", "GiB"):
    if n < 1024 or unit == "GiB":
      return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1024


def format_table(header: Sequence[str], rows: List[Sequence[str]],
                 markdown: bool = False) -> str:
  """A right-aligned text table, or a GitHub markdown table."""
  if markdown:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
  widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
  line = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths))
  return "\n".join([line(header), line(["-" * w for w in widths])]
                   + [line(r) for r in rows])


def _require_backends_not_started(caller: str):
  """Raises if JAX has started its backends, which read the process's CPU
  cores and `XLA_FLAGS` once."""
  if jax._src.xla_bridge.backends_are_initialized():  # pylint: disable=protected-access
    raise RuntimeError(f"{caller} must run before JAX starts its backends")


def pin_to_cores(num_cores: int):
  """Restricts this process to its first `num_cores` allowed CPU cores.

  Call before JAX creates its CPU client, which sizes its thread pool by
  the cores it may use: XLA then runs a program's independent operations
  on that many threads.
  """
  _require_backends_not_started("pin_to_cores")
  allowed = sorted(os.sched_getaffinity(0))
  if not 1 <= num_cores <= len(allowed):
    raise ValueError(f"num_cores must be in [1, {len(allowed)}], got "
                     f"{num_cores}")
  os.sched_setaffinity(0, allowed[:num_cores])


def set_cpu_small_loop_bytes(num_bytes: int):
  """Sets XLA's CPU threshold for compiling a while loop as one function.

  XLA's CPU compiler turns a while loop that touches fewer than this many
  bytes per iteration (by its cost model; default 1024) and holds no
  scatter, sort or custom call into a single compiled function, instead of
  launching each of its kernels separately. The option is read from
  `XLA_FLAGS` when JAX starts its backends, and holds for every program of
  the process.
  """
  _require_backends_not_started("set_cpu_small_loop_bytes")
  if num_bytes < 1:
    raise ValueError(f"num_bytes must be >= 1, got {num_bytes}")
  os.environ["XLA_FLAGS"] = " ".join(filter(None, [
      os.environ.get("XLA_FLAGS"),
      "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold="
      f"{num_bytes}"]))


def write_json(path: str, results: dict):
  """Writes `results` to `path` as indented JSON, creating its folder."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(results, f, indent=1)


def environment() -> dict:
  """jax version, device, date and command line, for the results file."""
  device = jax.devices()[0]
  return dict(
      jax_version=jax.__version__,
      device=f"{device.platform}: {device.device_kind}",
      num_devices=jax.device_count(),
      cpu_threads=len(os.sched_getaffinity(0)),
      xla_flags=os.environ.get("XLA_FLAGS", ""),
      date=datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      command=" ".join(_main_command() + sys.argv[1:]))


def _main_command() -> List[str]:
  """['python', '-m', 'package.module'] when run with -m, else the script."""
  spec = getattr(sys.modules["__main__"], "__spec__", None)
  if spec is None:
    return [sys.executable, sys.argv[0]]
  return [sys.executable, "-m", spec.name]
