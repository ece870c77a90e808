"""Which walk a search uses: the Pallas kernel (`pallas_walk`) or the
generic one (`search.simulate`).

The kernel runs the library's own selection rules only; `walk_rule`
recognises them from the functions the policies pass (partials of
`action_selection`'s rules with the library's Q-transforms and Python
numbers as parameters). Any other rule keeps the generic walk.

By default the kernel is used where it is lowered for a GPU (Triton), and
the generic walk on the CPU and the TPU (`jax.lax.platform_dependent`).
`walk_kernel(...)` changes that for the searches traced inside it: tests
force the kernel on the CPU with `walk_kernel("always", interpret=True)`.
"""
import contextlib
import functools
import inspect
import numbers
import threading
import jax
import jax.numpy as jnp

from mcts import action_selection
from mcts import pallas_walk
from mcts import qtransforms

_MODES = ("auto", "always", "never")
_options = threading.local()


@contextlib.contextmanager
def walk_kernel(mode: str = "auto", *, interpret: bool = False):
  """Chooses the walk of the searches traced in this context.

  Args:
    mode: "auto" (the kernel on GPUs, the generic walk elsewhere), "always"
      (the kernel on every platform: with `interpret=True` on the CPU) or
      "never" (the generic walk).
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


def simulate(rng_key, tree, root_action_selection_fn,
             interior_action_selection_fn, max_depth: int, *, generic):
  """`generic(rng_key, tree, root_fn, interior_fn, max_depth)` (the
  generic walk, `search.simulate`), or the walk kernel where it applies.

  Returns:
    parent `[B]`, action `[B]`, path `[B, L + 1]` and depth `[B]`, int32,
    as `search.simulate`'s.
  """
  def generic_walk(tree):
    return generic(rng_key, tree, root_action_selection_fn,
                   interior_action_selection_fn, max_depth)

  mode, interpret = _current_options()
  rule = None
  float32 = all(getattr(tree, f).dtype == jnp.float32 for f in (
      "node_values", "raw_values", "children_qvalues",
      "children_prior_logits"))
  if mode != "never" and float32:
    rule = walk_rule(root_action_selection_fn, interior_action_selection_fn)
  if rule is None:
    return generic_walk(tree)

  def kernel_walk(tree, interpret=interpret, compiler_params=None):
    return pallas_walk.walk(rule, rng_key, tree, max_depth,
                            interpret=interpret,
                            compiler_params=compiler_params)

  if mode == "always":
    return kernel_walk(tree)
  # Triton, one warp: a walk is a sequence of small row reads.
  from jax.experimental.pallas import triton as pltriton  # pylint: disable=g-import-not-at-top
  gpu_walk = functools.partial(
      kernel_walk, compiler_params=pltriton.CompilerParams(num_warps=1))
  return jax.lax.platform_dependent(tree, cuda=gpu_walk, rocm=gpu_walk,
                                    default=generic_walk)


def walk_rule(root_fn, interior_fn):
  """`pallas_walk.Puct` or `pallas_walk.Gumbel` if `root_fn` and
  `interior_fn` are the library's pUCT or Gumbel rules with static
  parameters, else None."""
  root_func, root_kw = _unwrap(root_fn)
  interior_func, interior_kw = _unwrap(interior_fn)
  if root_func is action_selection.muzero_action_selection:
    if (interior_func is not action_selection.muzero_action_selection
        or root_kw.pop("depth", None) != 0 or root_kw != interior_kw):
      return None
    kw = _with_defaults(root_func, root_kw)
    q_func, q_kw = _unwrap(kw.pop("qtransform"))
    q_kw = _with_defaults(q_func, q_kw)
    if q_func is qtransforms.qtransform_by_parent_and_siblings:
      params = dict(epsilon=q_kw["epsilon"])
    elif q_func is qtransforms.qtransform_by_min_max:
      params = dict(min_value=q_kw["min_value"],
                    max_value=q_kw["max_value"])
    else:
      return None
    rule = pallas_walk.Puct(pb_c_init=kw["pb_c_init"],
                            pb_c_base=kw["pb_c_base"], **params)
  elif (root_func is action_selection.gumbel_muzero_root_action_selection
        and interior_func is
        action_selection.gumbel_muzero_interior_action_selection):
    kw = _with_defaults(root_func, root_kw)
    interior_kw = _with_defaults(interior_func, interior_kw)
    if interior_kw.pop("qtransform") is not kw["qtransform"] or interior_kw:
      return None
    q_func, q_kw = _unwrap(kw.pop("qtransform"))
    if q_func is not qtransforms.qtransform_completed_by_mix_value:
      return None
    rule = pallas_walk.Gumbel(
        num_simulations=kw["num_simulations"],
        max_num_considered_actions=kw["max_num_considered_actions"],
        **_with_defaults(q_func, q_kw))
  else:
    return None
  if not all(v is None or isinstance(v, numbers.Number) for v in rule):
    return None  # Traced or array parameters: the generic walk.
  return rule


def _unwrap(fn):
  """(function, keyword arguments) of a (nested) `functools.partial`
  without positional arguments."""
  keywords = {}
  while isinstance(fn, functools.partial):
    if fn.args:
      return None, {}
    keywords = dict(fn.keywords, **keywords)
    fn = fn.func
  return fn, keywords


def _with_defaults(fn, keywords) -> dict:
  """`keywords` completed by `fn`'s keyword-only defaults."""
  defaults = {name: p.default
              for name, p in inspect.signature(fn).parameters.items()
              if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}
  return dict(defaults, **keywords)
