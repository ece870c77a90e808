"""What each addition to mctx costs: run time against the plain search.

  python -m benchmarks.features [--batch 16] [--actions 32] [--simulations 64]

On the tiny hash model (benchmarks.models), with the Gumbel policy, it times
(median of repeats, jitted, interleaved) the plain search and the same search
with: interior invalid-action masks, bfloat16 embedding storage, a kept
subtree (get_subtree, and continuing a kept tree against a fresh search of
the same capacity), and the sampled-action wrapper over K = A samples; and
the stochastic (chance-node) policy, ours against mctx's, with C = A
outcomes.
"""
import argparse
import functools

import jax
import jax.numpy as jnp

import mcts
from benchmarks import common
from benchmarks import models


def variants(batch, actions, sims):
  """name -> (jitted fn, args) for the same problem."""
  model = models.tiny_model(actions)
  recurrent_fn = models.recurrent_fn(mcts, model)
  root = models.root_output(mcts, model, jax.random.PRNGKey(0), batch)
  params = model.params

  def masked_fn(params, key, action, embedding):
    out, new = recurrent_fn(params, key, action, embedding)
    invalid = (jnp.arange(actions) % 3 == 0)[None] & (out.value[:, None] > 0)
    return out.replace(invalid_actions=invalid), new

  float_root = root.replace(embedding=root.embedding.astype(jnp.float32))

  def float_fn(params, key, action, embedding):
    out, new = recurrent_fn(params, key, action,
                            embedding.astype(root.embedding.dtype))
    return out, new.astype(jnp.float32)

  policy = functools.partial(mcts.gumbel_muzero_policy,
                             num_simulations=sims)
  out = {
      "plain": (jax.jit(functools.partial(policy, recurrent_fn=recurrent_fn)),
                (params, jax.random.PRNGKey(1), root)),
      "interior masks": (
          jax.jit(functools.partial(policy, recurrent_fn=masked_fn)),
          (params, jax.random.PRNGKey(1), root)),
      "float32 embeddings": (
          jax.jit(functools.partial(policy, recurrent_fn=float_fn)),
          (params, jax.random.PRNGKey(1), float_root)),
      "bfloat16 embeddings": (
          jax.jit(functools.partial(policy, recurrent_fn=float_fn,
                                    embedding_dtype=jnp.bfloat16)),
          (params, jax.random.PRNGKey(1), float_root)),
  }
  # Tree reuse: re-root a searched tree with room for the next search, and
  # continue it with as many new simulations.
  first = jax.jit(functools.partial(policy, recurrent_fn=recurrent_fn,
                                    capacity=2 * sims + 1))(
                                        params, jax.random.PRNGKey(1), root)
  kept = jax.jit(mcts.get_subtree)(first.search_tree, first.action)
  out["get_subtree"] = (jax.jit(mcts.get_subtree),
                        (first.search_tree, first.action))
  out["continue kept tree"] = (
      jax.jit(lambda p, k, r, t: policy(p, k, r, recurrent_fn, tree=t)),
      (params, jax.random.PRNGKey(2), root, kept))
  out["fresh search, same capacity"] = (
      jax.jit(functools.partial(policy, recurrent_fn=recurrent_fn,
                                capacity=2 * sims + 1)),
      (params, jax.random.PRNGKey(2), root))

  # Sampled actions: the same model, its actions given as K = A samples.
  samples = jnp.broadcast_to(jnp.arange(actions)[None, :, None],
                             (batch, actions, 1))

  def sampled_fn(params, key, action, embedding):
    step, new = recurrent_fn(params, key, action[:, 0], embedding)
    return mcts.SampledRecurrentFnOutput(
        reward=step.reward, discount=step.discount, value=step.value,
        sampled_actions=samples, prior_logits=step.prior_logits), new

  sampled_root = mcts.SampledRootFnOutput(
      sampled_actions=samples, prior_logits=root.prior_logits,
      value=root.value, embedding=root.embedding)
  out["sampled actions (K = A)"] = (
      jax.jit(functools.partial(mcts.sampled_muzero_policy,
                                recurrent_fn=sampled_fn,
                                num_simulations=sims)),
      (params, jax.random.PRNGKey(1), sampled_root))
  for name, module in (("stochastic (mcts)", mcts), ("stochastic (mctx)",
                                                     _mctx())):
    if module is not None:
      out[name] = (jax.jit(functools.partial(
          module.stochastic_muzero_policy, num_simulations=sims,
          **_chance_model(module, model, actions))),
                   (params, jax.random.PRNGKey(1),
                    models.root_output(module, model, jax.random.PRNGKey(0),
                                       batch)))
  return out


def _mctx():
  try:
    import mctx  # pylint: disable=g-import-not-at-top
    return mctx
  except ImportError:
    return None


def _chance_model(module, model, actions):
  """The tiny model split in two: a decision step to an afterstate (the
  hashed state), then a chance outcome (one of C = A) hashed in too."""
  def decision_recurrent_fn(params, key, action, state):
    del key
    after = model.step(params, state, action)
    logits = model.predict(params, after)["prior_logits"]
    return module.DecisionRecurrentFnOutput(
        chance_logits=logits, afterstate_value=jnp.zeros(state.shape)), after

  def chance_recurrent_fn(params, key, outcome, after):
    del key
    state = model.step(params, after, outcome)
    p = model.predict(params, state)
    return module.ChanceRecurrentFnOutput(
        action_logits=p["prior_logits"], value=p["value"],
        reward=p["reward"], discount=p["discount"]), state

  return dict(decision_recurrent_fn=decision_recurrent_fn,
              chance_recurrent_fn=chance_recurrent_fn)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--actions", type=int, default=32)
  parser.add_argument("--simulations", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args()
  cases = variants(args.batch, args.actions, args.simulations)
  times = {name: common.median_seconds(fn, fn_args, args.repeats)
           for name, (fn, fn_args) in cases.items()}
  print(f"gumbel_muzero_policy, tiny model, B={args.batch} A={args.actions} "
        f"sims={args.simulations}, jax {jax.__version__} on "
        f"{jax.devices()[0].platform}")
  print("| variant | ms | vs plain |")
  print("|---|---:|---:|")
  for name, seconds in times.items():
    print(f"| {name} | {seconds * 1e3:.2f} | {seconds / times['plain']:.2f}x |")


if __name__ == "__main__":
  main()
