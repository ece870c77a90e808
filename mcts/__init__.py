"""Batched Monte Carlo Tree Search in JAX, with mctx's API."""
from mcts.action_selection import GumbelMuZeroExtraData
from mcts.action_selection import gumbel_muzero_interior_action_selection
from mcts.action_selection import gumbel_muzero_root_action_selection
from mcts.action_selection import masked_argmax
from mcts.action_selection import muzero_action_selection
from mcts.base import ChanceRecurrentFnOutput
from mcts.base import DecisionRecurrentFnOutput
from mcts.base import InteriorActionSelectionFn
from mcts.base import LoopFn
from mcts.base import PolicyOutput
from mcts.base import RecurrentFn
from mcts.base import RecurrentFnOutput
from mcts.base import RecurrentState
from mcts.base import RootActionSelectionFn
from mcts.base import RootFnOutput
from mcts.base import SearchSummary
from mcts.base import StochasticRecurrentState
from mcts.gumbel_stochastic import gumbel_stochastic_muzero_policy
from mcts.policies import gumbel_muzero_policy
from mcts.policies import muzero_policy
from mcts.qtransforms import qtransform_by_min_max
from mcts.qtransforms import qtransform_by_parent_and_siblings
from mcts.qtransforms import qtransform_completed_by_mix_value
from mcts.sampled import SampledPolicyOutput
from mcts.sampled import SampledRecurrentFnOutput
from mcts.sampled import SampledRootFnOutput
from mcts.sampled import sampled_muzero_policy
from mcts.search import search
from mcts.stochastic import stochastic_muzero_policy
from mcts.subtree import get_subtree
from mcts.tree import Tree
from mcts.tree import tree_nbytes
from mcts.visualization import render_dot
from mcts.visualization import to_dot

__version__ = "0.1.0"
