"""Rollouts: sample `num_generations` completions per prompt with dlmtune's sampler and score them.

A `Rollout` holds what the inner updates of one batch need, as tensors (so it can be saved with a
checkpoint): the left-padded prompts (each repeated `num_generations` times in a row, so a group is
consecutive rows), the completions, which completion tokens count (through the first stop token, d1's
rule), the weighted reward and its group-relative advantage, and, filled in by the trainer, the
rollout policy's and the reference model's log-probability estimates for every inner update.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from tqdm.auto import tqdm

from dlmtune.models.spec import DLMSpec
from dlmtune.rl.config import RLConfig
from dlmtune.rl.losses import group_advantages
from dlmtune.rl.prompts import PromptSet
from dlmtune.rl.rewards import RewardSet
from dlmtune.sampling import decode_completions, generate
from dlmtune.tasks.base import REASONING_OPEN

Tensor = torch.Tensor


@dataclass
class Rollout:
    prompt_ids: Tensor  # [B, P] left-padded
    prompt_attention: Tensor  # [B, P]
    completion_ids: Tensor  # [B, C]
    completion_mask: Tensor  # [B, C] 1 through the first stop token
    rewards_per_function: Tensor  # [B, F] unweighted
    rewards: Tensor  # [B] weighted sum
    advantages: Tensor  # [B]
    old_logps: Tensor | None = None  # [num_iterations, B, C]
    ref_logps: Tensor | None = None  # [num_iterations, B, C]

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> Rollout:
        return cls(**tensors)

    def to(self, device: torch.device) -> Rollout:
        return Rollout.from_tensors({k: v.to(device) for k, v in self.tensors().items()})


def completion_mask(completion_ids: Tensor, stop_ids: tuple[int, ...]) -> Tensor:
    """[B, C] 1 up to and including the first stop token (everything when there is none)."""
    stops = torch.isin(completion_ids, torch.tensor(stop_ids, device=completion_ids.device))
    first = torch.where(stops.any(1), stops.int().argmax(1), completion_ids.shape[1])
    return (torch.arange(completion_ids.shape[1], device=completion_ids.device) <= first.unsqueeze(1)).long()


@torch.no_grad()
def sample_completions(model, prompt_ids: Tensor, prompt_attention: Tensor, rl: RLConfig, spec: DLMSpec,
                       generator: torch.Generator, desc: str, progress: bool) -> Tensor:
    """[B, C] completions, `rl.generation_batch_size` rows at a time, with a progress bar."""
    chunks = []
    bar = tqdm(total=prompt_ids.shape[0], desc=desc, unit="completion", leave=False, disable=not progress)
    for start in range(0, prompt_ids.shape[0], rl.generation_batch_size):
        rows = slice(start, start + rl.generation_batch_size)
        out = generate(model, prompt_ids[rows], attention_mask=prompt_attention[rows], mask_id=spec.mask_token_id,
                       gen_length=rl.max_completion_length, block_length=rl.block_length,
                       steps=rl.diffusion_steps, temperature=rl.temperature, remasking=rl.remasking,
                       shift_logits=spec.shift_logits, generator=generator)
        chunks.append(out[:, prompt_ids.shape[1]:])
        bar.update(out.shape[0])
    bar.close()
    return torch.cat(chunks)


def roll_out(model, tokenizer, spec: DLMSpec, prompts: PromptSet, indices: list[int], rl: RLConfig,
             rewards: RewardSet, generator: torch.Generator, device: torch.device, desc: str = "rollout",
             progress: bool = True) -> Rollout:
    """Sample and score completions for the items `indices` (without log-probability estimates)."""
    prompt_ids, prompt_attention = prompts.batch(indices, rl.num_generations, spec.pad_token_id)
    prompt_ids, prompt_attention = prompt_ids.to(device), prompt_attention.to(device)
    completion_ids = sample_completions(model, prompt_ids, prompt_attention, rl, spec, generator, desc, progress)
    texts = decode_completions(tokenizer, torch.cat([prompt_ids, completion_ids], 1), prompt_ids.shape[1],
                               spec.stop_token_ids)
    items = [prompts.items[i] for i in indices for _ in range(rl.num_generations)]
    scores = torch.tensor([rewards.score(REASONING_OPEN + text, item) for text, item in zip(texts, items, strict=True)],
                          dtype=torch.float32, device=device)  # [B, F]
    weighted = scores @ torch.tensor(rewards.weights, dtype=torch.float32, device=device)
    return Rollout(prompt_ids, prompt_attention, completion_ids, completion_mask(completion_ids, spec.stop_token_ids),
                   scores, weighted, group_advantages(weighted, rl.num_generations, scale=rl.scale_rewards))
