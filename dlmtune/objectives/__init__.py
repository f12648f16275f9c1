"""The diffusion SFT objectives: pure tensor math (entropy, masking, weights, loss) and the registry of
named objectives that trainers call. See each module's docstring for the paper or convention it follows."""

from dlmtune.models.forward import shift_logits
from dlmtune.objectives.entropy import token_entropy, token_nll
from dlmtune.objectives.loss import NORMALIZATIONS, masked_diffusion_loss, reduce_masked_loss
from dlmtune.objectives.masking import (
    beta_reference,
    importance_mask_probs,
    llada_mask_probs,
    sample_mask,
    sample_t,
    uniform_mask_probs,
)
from dlmtune.objectives.registry import (
    OBJECTIVES,
    VARIANTS,
    Objective,
    ObjectiveConfig,
    ObjectiveOutput,
    get_objective,
)
from dlmtune.objectives.weights import cart_weights, entropy_beta, nll_beta, sw_weights

__all__ = [
    "NORMALIZATIONS",
    "OBJECTIVES",
    "VARIANTS",
    "Objective",
    "ObjectiveConfig",
    "ObjectiveOutput",
    "beta_reference",
    "cart_weights",
    "entropy_beta",
    "get_objective",
    "importance_mask_probs",
    "llada_mask_probs",
    "masked_diffusion_loss",
    "nll_beta",
    "reduce_masked_loss",
    "sample_mask",
    "sample_t",
    "shift_logits",
    "sw_weights",
    "token_entropy",
    "token_nll",
    "uniform_mask_probs",
]
