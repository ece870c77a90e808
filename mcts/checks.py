"""Argument checks, run at trace time, with messages that name the argument.

Values that are only known at run time (an all-invalid root under `jit`, a
NaN from the model) are checked at run time when JAX's NaN debugging is on
(`JAX_DEBUG_NANS=True` or `jax.config.update("jax_debug_nans", True)`).
A search given `check_finite=True` also checks the model's outputs with
`jax.experimental.checkify` (see `check_finite_outputs`).
"""
import numbers

import jax
from jax.experimental import checkify
import jax.numpy as jnp
import numpy as np


def _shape(x):
  return tuple(getattr(x, "shape", np.shape(x)))


def _dtype(x):
  return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def _is_float(x):
  return jnp.issubdtype(_dtype(x), jnp.floating)


def _is_concrete(x):
  return not isinstance(x, jax.core.Tracer)


def _debug_mode():
  return bool(jax.config.jax_debug_nans)


def check_int_at_least(name, value, minimum):
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
      or value < minimum):
    raise ValueError(f"{name} must be a Python int >= {minimum}; got "
                     f"{value!r}.")


def is_python_zero(value) -> bool:
  """Whether `value` is a Python number equal to 0: known at trace time,
  so that a policy can skip drawing noise it would multiply by 0."""
  return isinstance(value, (int, float)) and value == 0


def check_positive(name, value):
  """Raises for a Python number <= 0 (traced values pass)."""
  if isinstance(value, (int, float)) and not value > 0:
    raise ValueError(f"{name} must be > 0; got {value!r}.")


def check_search_args(root, num_simulations, max_depth, invalid_actions):
  """Checks the arguments of `search` (and of the policies)."""
  for field in ("prior_logits", "value", "embedding"):
    if not hasattr(root, field):
      raise TypeError("root must be a RootFnOutput(prior_logits [B, A], "
                      f"value [B], embedding); got {type(root).__name__}.")
  check_int_at_least("num_simulations", num_simulations, 1)
  if max_depth is not None:
    check_int_at_least("max_depth", max_depth, 1)
  logits_shape = _shape(root.prior_logits)
  if len(logits_shape) != 2 or logits_shape[1] < 1:
    raise ValueError("root.prior_logits must have shape [B, A]; got shape "
                     f"{logits_shape}.")
  if not _is_float(root.prior_logits):
    raise TypeError("root.prior_logits must be floating point; got "
                    f"{_dtype(root.prior_logits)}.")
  batch_size, num_actions = logits_shape
  if _shape(root.value) != (batch_size,):
    raise ValueError(f"root.value must have shape [B] = [{batch_size}] to "
                     f"match root.prior_logits {list(logits_shape)}; got "
                     f"shape {_shape(root.value)}.")
  if not _is_float(root.value):
    raise TypeError("root.value must be floating point; got "
                    f"{_dtype(root.value)}.")
  for path, leaf in jax.tree_util.tree_flatten_with_path(root.embedding)[0]:
    shape = _shape(leaf)
    if not shape or shape[0] != batch_size:
      raise ValueError(
          f"root.embedding{jax.tree_util.keystr(path)} must have shape "
          f"[B, ...] with B = {batch_size} (from root.prior_logits); got "
          f"shape {shape}.")
  if invalid_actions is not None:
    check_invalid_actions(invalid_actions, batch_size, num_actions)


def check_invalid_actions(invalid_actions, batch_size, num_actions):
  """`invalid_actions` must be `[B, A]` and leave a valid action per root."""
  if _shape(invalid_actions) != (batch_size, num_actions):
    raise ValueError(
        f"invalid_actions must have shape [B, A] = [{batch_size}, "
        f"{num_actions}] (from root.prior_logits); got shape "
        f"{_shape(invalid_actions)}.")
  if _is_concrete(invalid_actions):
    all_invalid = np.all(np.asarray(invalid_actions) != 0, axis=-1)
    if np.any(all_invalid):
      raise ValueError(
          "invalid_actions marks every action invalid at the roots with "
          f"batch indices {np.flatnonzero(all_invalid).tolist()}; each root "
          "needs at least one valid action.")
  elif _debug_mode():
    jax.debug.callback(_raise_if_all_invalid, invalid_actions)


def _raise_if_all_invalid(invalid_actions):
  all_invalid = np.all(np.asarray(invalid_actions) != 0, axis=-1)
  if np.any(all_invalid):
    raise ValueError(
        "invalid_actions marks every action invalid at the roots with batch "
        f"indices {np.flatnonzero(all_invalid).tolist()}.")


def check_recurrent_output(output, new_embedding, embedding, batch_actions,
                           value_dtype):
  """Checks what `recurrent_fn` returned against the expected shapes.

  Args:
    output: the returned RecurrentFnOutput.
    new_embedding: the returned embedding.
    embedding: the embedding it was given (the expected structure).
    batch_actions: `(B, A)`.
    value_dtype: the dtype of the tree's values.
  """
  batch_size, num_actions = batch_actions
  fields = ("reward", "discount", "prior_logits", "value")
  if not all(hasattr(output, f) for f in fields):
    raise TypeError(
        "recurrent_fn must return (RecurrentFnOutput(reward [B], discount "
        "[B], prior_logits [B, A], value [B]), embedding); got "
        f"{type(output).__name__} as its first element.")
  expected = {"reward": (batch_size,), "discount": (batch_size,),
              "prior_logits": (batch_size, num_actions),
              "value": (batch_size,)}
  for field, shape in expected.items():
    array = getattr(output, field)
    if _shape(array) != shape:
      raise ValueError(
          f"recurrent_fn returned {field} of shape {_shape(array)}; expected "
          f"{list(shape)} ([B{', A' if len(shape) == 2 else ''}] with "
          f"B={batch_size}, A={num_actions}).")
    if not _is_float(array):
      raise TypeError(f"recurrent_fn returned {field} of dtype "
                      f"{_dtype(array)}; expected floating point "
                      f"({value_dtype}).")
  invalid = getattr(output, "invalid_actions", None)
  if invalid is not None and _shape(invalid) != (batch_size, num_actions):
    raise ValueError(
        f"recurrent_fn returned invalid_actions of shape {_shape(invalid)}; "
        f"expected [{batch_size}, {num_actions}] ([B, A]).")
  expected_def = jax.tree.structure(embedding)
  got_def = jax.tree.structure(new_embedding)
  if expected_def != got_def:
    raise TypeError("recurrent_fn returned an embedding with structure "
                    f"{got_def}; expected the structure of root.embedding, "
                    f"{expected_def}.")
  for old, new in zip(jax.tree.leaves(embedding),
                      jax.tree.leaves(new_embedding)):
    if _shape(old) != _shape(new):
      raise ValueError(f"recurrent_fn returned an embedding leaf of shape "
                       f"{_shape(new)}; expected {_shape(old)} (as in "
                       "root.embedding).")
    if _dtype(new) != _dtype(old):
      raise TypeError(f"recurrent_fn returned an embedding leaf of dtype "
                      f"{_dtype(new)}; expected "
                      f"{_dtype(old)} (as in root.embedding).")
  if _debug_mode():
    jax.debug.callback(_raise_if_not_finite, output.reward, output.discount,
                       output.prior_logits, output.value)


def _raise_if_not_finite(reward, discount, prior_logits, value):
  for name, array in (("reward", reward), ("discount", discount),
                      ("value", value)):
    if not np.all(np.isfinite(array)):
      raise FloatingPointError(f"recurrent_fn returned a non-finite {name}: "
                               f"{np.asarray(array)}.")
  if np.any(np.isnan(prior_logits)):
    raise FloatingPointError("recurrent_fn returned NaN in prior_logits.")


def check_finite_outputs(output, simulation=None):
  """`checkify.check`s that the model's outputs are finite, for a search
  wrapped in `checkify.checkify(..., errors=checkify.user_checks)`.

  reward, discount and value must be finite; prior_logits may be -inf
  (an illegal action), not NaN or +inf. The message names the field, the
  simulation and the first batch index at fault.

  Args:
    output: a RootFnOutput (checked before the first simulation) or the
      RecurrentFnOutput of a simulation.
    simulation: None for the root, else the simulation's index `[]` int32.
  """
  if simulation is None:
    where, fields = "root.{} is not finite", ("prior_logits", "value")
  else:
    where = ("recurrent_fn returned a non-finite {} at simulation "
             "{{simulation}}")
    fields = ("reward", "discount", "prior_logits", "value")
  for field in fields:
    array = getattr(output, field)
    ok = jnp.isfinite(array)
    if field == "prior_logits":
      ok = ok | (array == -jnp.inf)
      ok = jnp.all(ok, axis=-1)
    kwargs = dict(batch_index=jnp.argmin(ok))
    if simulation is not None:
      kwargs["simulation"] = simulation
    checkify.check(jnp.all(ok), where.format(field) +
                   " (batch index {batch_index}).", **kwargs)


def check_kept_tree(tree, root, capacity):
  """A kept tree must match the roots' batch, actions and embeddings."""
  batch_size, num_actions = _shape(root.prior_logits)
  shape = _shape(tree.children_index)
  if shape[0] != batch_size or shape[2] != num_actions:
    raise ValueError(
        f"tree has batch {shape[0]} and {shape[2]} actions; the roots have "
        f"[B, A] = [{batch_size}, {num_actions}] (root.prior_logits).")
  if capacity is not None and capacity != shape[1]:
    raise ValueError(f"capacity={capacity} differs from the kept tree's "
                     f"{shape[1]} nodes; leave capacity out when passing "
                     "tree.")
  if jax.tree.structure(tree.embeddings) != jax.tree.structure(
      root.embedding):
    raise TypeError("tree.embeddings and root.embedding have different "
                    "structures.")


def check_decision_output(output, batch_size):
  """Checks a Stochastic MuZero `decision_recurrent_fn`'s output."""
  if not (hasattr(output, "chance_logits") and
          hasattr(output, "afterstate_value")):
    raise TypeError(
        "decision_recurrent_fn must return (DecisionRecurrentFnOutput("
        "chance_logits [B, C], afterstate_value [B]), afterstate_embedding); "
        f"got {type(output).__name__} as its first element.")
  shape = _shape(output.chance_logits)
  if len(shape) != 2 or shape[0] != batch_size or shape[1] < 1:
    raise ValueError("decision_recurrent_fn returned chance_logits of shape "
                     f"{shape}; expected [B, C] with B={batch_size}.")
  if _shape(output.afterstate_value) != (batch_size,):
    raise ValueError("decision_recurrent_fn returned afterstate_value of "
                     f"shape {_shape(output.afterstate_value)}; expected "
                     f"[{batch_size}] ([B]).")


def check_chance_output(output, state, root_embedding, batch_size,
                        num_actions):
  """Checks a Stochastic MuZero `chance_recurrent_fn`'s output against
  the root's embedding."""
  fields = ("action_logits", "value", "reward", "discount")
  if not all(hasattr(output, f) for f in fields):
    raise TypeError(
        "chance_recurrent_fn must return (ChanceRecurrentFnOutput("
        "action_logits [B, A], value [B], reward [B], discount [B]), "
        f"state_embedding); got {type(output).__name__} as its first "
        "element.")
  expected = {"action_logits": (batch_size, num_actions),
              "value": (batch_size,), "reward": (batch_size,),
              "discount": (batch_size,)}
  for field, shape in expected.items():
    got = _shape(getattr(output, field))
    if got != shape:
      raise ValueError(
          f"chance_recurrent_fn returned {field} of shape {got}; expected "
          f"{list(shape)} (B={batch_size}, A={num_actions} from "
          "root.prior_logits).")
  if jax.tree.structure(state) != jax.tree.structure(root_embedding):
    raise TypeError(
        "chance_recurrent_fn returned a state embedding with structure "
        f"{jax.tree.structure(state)}; expected the structure of "
        f"root.embedding, {jax.tree.structure(root_embedding)}.")
  for old, new in zip(jax.tree.leaves(root_embedding),
                      jax.tree.leaves(state)):
    if _shape(old) != _shape(new) or old.dtype != new.dtype:
      raise ValueError(
          "chance_recurrent_fn returned a state embedding leaf "
          f"{new.dtype}{list(_shape(new))}; expected "
          f"{old.dtype}{list(_shape(old))} (as in root.embedding).")
