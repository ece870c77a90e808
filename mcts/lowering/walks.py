"""Which walk a search takes on each platform: the Pallas kernel
(`pallas_walk`) or the generic walk (`generic_walk`).

The kernel runs the library's own selection rules only, as the policies
describe them (`mcts.rules`: `Puct`, or `GumbelRoot` with
`GumbelInterior`, with a library Q-transform and Python numbers):
`kernel_rule` reads the description. Any other rule keeps the generic walk.

By default ("auto") every platform takes the generic walk, until a GPU
has measured the kernel correct and faster (`KERNEL_MEASURED_ON_GPU`); then
the kernel is used where the search is lowered for a GPU (Triton), and the
generic walk on the CPU and the TPU (`jax.lax.platform_dependent`).
`walk_kernel(...)` changes that for the searches traced inside it:
`walk_kernel("always")` takes the kernel on GPUs now, and tests force it on
the CPU with `walk_kernel("always", interpret=True)`.

The walk returns integers only: it reads the tree through
`jax.lax.stop_gradient`, so that no tangent ever reaches the kernel (a
`pallas_call` has no derivative rule) nor the generic walk's loop, whatever
derivative of the search is taken.
"""
import contextlib
import functools
import numbers
import threading

import jax
import jax.numpy as jnp
from jax.experimental.pallas import triton as pltriton

from mcts import qtransforms
from mcts import rules
from mcts.lowering import generic_walk
from mcts.lowering import pallas_walk

# Whether `benchmarks/gpu_check` has measured the walk kernel correct and
# faster than the generic walk on a GPU. Until then "auto" takes the
# generic walk on GPUs too: the kernel has been lowered for CUDA and run in
# Pallas' interpreter, never compiled by Triton nor run on a GPU. Flip it
# in the commit that adds gpu_check's results showing so.
KERNEL_MEASURED_ON_GPU = False

_MODES = ("auto", "always", "never")
_options = threading.local()


@contextlib.contextmanager
def walk_kernel(mode: str = "auto", *, interpret: bool = False):
  """Chooses the walk of the searches traced in this context.

  Args:
    mode: "auto" (the generic walk; the kernel on GPUs once
      `KERNEL_MEASURED_ON_GPU`), "always" (the kernel on every platform:
      Triton on GPUs, with `interpret=True` on the CPU) or "never" (the
      generic walk).
    interpret: run the kernel in Pallas' interpreter.

  The walk is chosen when a search is traced: jit a function of its own
  inside the context (one traced before, under another mode, keeps its
  walk).
  """
  if mode not in _MODES:
    raise ValueError(f"walk_kernel: mode must be one of {_MODES}, got "
                     f"{mode!r}.")
  previous = getattr(_options, "value", None)
  _options.value = (mode, interpret)
  try:
    yield
  finally:
    _options.value = previous


def _current_options():
  return getattr(_options, "value", None) or ("auto", False)


def walk(rng_key, tree, root_action_selection_fn,
         interior_action_selection_fn, max_depth: int):
  """Walks each tree of the batch from its root to the edge where it will
  expand, by the given selection rules (as `generic_walk.walk`), in the
  walk kernel where it applies.

  The tree is read through `jax.lax.stop_gradient` (the outputs are
  integers): a derivative of the search never differentiates the walk.

  Returns:
    parent `[B]`, action `[B]`, path `[B, L + 1]` and depth `[B]`, int32,
    as `generic_walk.walk`'s.
  """
  tree = jax.lax.stop_gradient(tree)
  one_node = all(map(rules.reads_one_node, (root_action_selection_fn,
                                            interior_action_selection_fn)))

  def generic(tree):
    return generic_walk.walk(rng_key, tree, root_action_selection_fn,
                             interior_action_selection_fn, max_depth,
                             one_node=one_node)

  mode, interpret = _current_options()
  rule = None
  float32 = all(getattr(tree, f).dtype == jnp.float32 for f in (
      "node_values", "raw_values", "children_qvalues",
      "children_prior_logits"))
  wanted = mode == "always" or (mode == "auto" and KERNEL_MEASURED_ON_GPU)
  if wanted and float32:
    rule = kernel_rule(root_action_selection_fn, interior_action_selection_fn)
  if rule is None:
    return generic(tree)

  def kernel(tree, interpret=interpret, compiler_params=None):
    return pallas_walk.walk(rule, rng_key, tree, max_depth,
                            interpret=interpret,
                            compiler_params=compiler_params)

  if mode == "always" and interpret:
    return kernel(tree)
  # Triton, one warp: a walk is a sequence of small row reads.
  gpu_kernel = functools.partial(
      kernel, compiler_params=pltriton.CompilerParams(num_warps=1))
  return jax.lax.platform_dependent(
      tree, cuda=gpu_kernel, rocm=gpu_kernel,
      default=kernel if mode == "always" else generic)


def kernel_rule(root_action_selection_fn, interior_action_selection_fn):
  """The rule the walk kernel runs in place of these selection functions,
  or None (the generic walk then calls them).

  The kernel runs a `rules.Puct` given for both, with a
  `qtransforms.ByParentAndSiblings` or `ByMinMax`, and a `rules.GumbelRoot`
  with a `rules.GumbelInterior` of the same `qtransforms.
  CompletedByMixValue`; all their numbers must be Python numbers (the
  kernel is specialised to them: traced ones keep the generic walk).
  """
  root_fn, interior_fn = root_action_selection_fn, interior_action_selection_fn
  if not all(isinstance(fn, rules.RULES) and all(
      isinstance(x, numbers.Number) for x in jax.tree.leaves(fn))
             for fn in (root_fn, interior_fn)):
    return None
  if (isinstance(root_fn, rules.Puct) and isinstance(interior_fn, rules.Puct)
      and root_fn == interior_fn and isinstance(
          root_fn.qtransform, (qtransforms.ByParentAndSiblings,
                               qtransforms.ByMinMax))):
    return root_fn
  if (isinstance(root_fn, rules.GumbelRoot)
      and isinstance(interior_fn, rules.GumbelInterior)
      and root_fn.qtransform == interior_fn.qtransform
      and isinstance(root_fn.qtransform, qtransforms.CompletedByMixValue)):
    return root_fn
  return None
