"""How the search's loops are lowered per platform: the choice of platform
and the tree levels one `while_loop` iteration takes.

`by_platform` is `jax.lax.platform_dependent`, unless a platform is forced
(`forced_platform`), which lets the tests run an accelerator's lowering on
the CPU and check that it gives the same trees.
"""
import contextlib
from typing import Optional

import jax

# Tree levels per `while_loop` iteration of the walk and the backup, by
# platform (keys as in `jax.lax.platform_dependent`). On a GPU each
# iteration costs about 20 us (its condition goes to the host), more than a
# level's work: 4 levels per iteration made searches 6-47% faster on an
# H100 (`benchmarks/studies/loop_levels.py`; 8 was slower for Gumbel). On
# the CPU 1 keeps a loop small enough at batch 1 for XLA to compile it as
# one function, and more levels measured no faster.
LEVELS_PER_ITERATION = dict(cpu=1, default=4)

# The platform whose lowering `by_platform` takes everywhere, or None to
# choose by the platform the search is lowered for.
_forced: Optional[str] = None


@contextlib.contextmanager
def forced_platform(platform: str):
  """Within this context, searches traced take `platform`'s lowering (a
  key of `by_platform`'s branches, e.g. "default" for an accelerator's)
  whatever they run on. Clear jit's caches around it
  (`jax.clear_caches()`): programs traced before are reused as they are."""
  global _forced
  saved, _forced = _forced, platform
  try:
    yield
  finally:
    _forced = saved


def by_platform(*args, **branches):
  """`jax.lax.platform_dependent(*args, **branches)`: the branch for the
  platform the call is lowered for, or for the forced one (a missing
  branch falls back to `default`)."""
  if _forced is not None:
    return branches.get(_forced, branches["default"])(*args)
  return jax.lax.platform_dependent(*args, **branches)


def while_levels(cond_fn, level_fn, state):
  """`lax.while_loop(cond_fn, level_fn, state)` for a `level_fn` that leaves
  finished trees unchanged, taking `LEVELS_PER_ITERATION` levels per
  iteration for the platform it is lowered for."""
  return by_platform(
      state, **{platform: levels_loop(cond_fn, level_fn, levels)
                for platform, levels in LEVELS_PER_ITERATION.items()})


def levels_loop(cond_fn, level_fn, levels: int):
  """`state -> lax.while_loop(cond_fn, body, state)` whose body applies
  `level_fn` `levels` times."""
  def body(state):
    for _ in range(levels):
      state = level_fn(state)
    return state
  return lambda state: jax.lax.while_loop(cond_fn, body, state)
