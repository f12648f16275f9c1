"""The sampler against a direct re-implementation of LLaDA's generate, and its fast paths against the
plain sampler, on tiny random models (mask id 63 in a 64-token vocabulary)."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForMaskedLM, LlamaForCausalLM

from dlmtune.sampling import (
    DLMForward,
    add_gumbel_noise,
    crop_cache,
    decode_completions,
    generate,
    keep_positions,
    num_transfer_tokens,
)

MASK = 63
LENGTHS = dict(gen_length=16, block_length=8, steps=8)


@pytest.fixture
def model(tiny_bidir_model: LlamaForCausalLM) -> LlamaForCausalLM:
    """The tiny model with sharper attention and stronger layer outputs. Fresh, its attention is nearly
    uniform (so positions barely matter) and it mostly repeats one token: differences between sampler
    settings, or wrong position ids, would go unseen."""
    with torch.no_grad():
        for layer in tiny_bidir_model.model.layers:
            for weight in (layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight):
                weight.mul_(8)
            layer.self_attn.v_proj.weight.mul_(10)
            layer.mlp.down_proj.weight.mul_(10)
    return tiny_bidir_model


@pytest.fixture
def confident_model(model: LlamaForCausalLM) -> LlamaForCausalLM:
    """Peaked output distributions (top probabilities around 0.6), so a 0.5 threshold gets crossed."""
    with torch.no_grad():
        model.lm_head.weight.mul_(100)
    return model


def prompts(*lengths: int, seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, MASK, (n,), generator=generator) for n in lengths]


def left_padded(rows: list[torch.Tensor], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.stack([torch.cat([torch.full((width - len(r),), pad), r]) for r in rows])
    mask = torch.stack([torch.arange(width) >= width - len(r) for r in rows]).long()
    return ids, mask


def llada_reference(model: nn.Module, prompt: torch.Tensor, gen_length: int, block_length: int, steps: int,
                    cfg_scale: float = 0.0):
    """LLaDA's generate written out directly for one prompt, greedy (and, like dlmtune, never predicting
    the mask token)."""
    x = torch.cat([prompt, torch.full((gen_length,), MASK)]).unsqueeze(0)
    per_block = steps // (gen_length // block_length)
    for lo in range(len(prompt), x.shape[1], block_length):
        hi = lo + block_length
        masked = int((x[0, lo:hi] == MASK).sum())
        for step in range(per_block):
            k = masked // per_block + (step < masked % per_block)
            logits = model(input_ids=x).logits[0]
            if cfg_scale > 0:
                unconditional = model(input_ids=x.index_fill(1, torch.arange(len(prompt)), MASK)).logits[0]
                logits = unconditional + (cfg_scale + 1) * (logits - unconditional)
            logits[:, MASK] = -math.inf
            guess = logits.argmax(-1)
            probability = torch.softmax(logits, -1)[torch.arange(len(guess)), guess]
            confidence = torch.where(x[0] == MASK, probability, -math.inf)
            confidence[hi:] = -math.inf
            chosen = confidence.topk(k).indices
            x[0, chosen] = guess[chosen]
    return x[0]


@contextmanager
def recorded_calls(model: nn.Module) -> Iterator[list[dict]]:
    """The keyword arguments of every forward call of `model`."""
    calls: list[dict] = []
    handle = model.register_forward_pre_hook(lambda _m, _a, kwargs: calls.append(kwargs), with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


class WithoutPositions(nn.Module):
    """A model whose forward, like LLaDA's remote code, takes neither position ids nor a cache."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_num_transfer_tokens_splits_evenly_remainder_first():
    counts = num_transfer_tokens(torch.tensor([10, 3, 0, 8]), 4)
    assert counts.tolist() == [[3, 3, 2, 2], [1, 1, 1, 0], [0, 0, 0, 0], [2, 2, 2, 2]]


def test_gumbel_noise_is_greedy_at_zero_and_seeded_above():
    logits = torch.randn(2, 5, 64)
    assert add_gumbel_noise(logits, 0.0) is logits
    draw = [add_gumbel_noise(logits, 1.0, torch.Generator().manual_seed(3)).argmax(-1) for _ in range(2)]
    assert draw[0].equal(draw[1]) and add_gumbel_noise(logits, 1.0).dtype == torch.float64


@pytest.mark.parametrize(
    ("overrides", "argument"),
    [
        (dict(gen_length=12, block_length=8), "gen_length"),
        (dict(block_length=0), "block_length"),
        (dict(steps=3), "steps"),
        (dict(steps=0), "steps"),
        (dict(temperature=-0.5), "temperature"),
        (dict(remasking="entropy"), "remasking"),
        (dict(cfg_scale=-1.0), "cfg_scale"),
        (dict(threshold=0.0), "threshold"),
        (dict(threshold=1.5), "threshold"),
        (dict(threshold=0.9, remasking="random"), "threshold"),
        (dict(cache="suffix"), "cache"),
    ],
)
def test_invalid_arguments_name_the_argument(model, overrides, argument):
    with pytest.raises(ValueError, match=argument):
        generate(model, prompts(4)[0][None], mask_id=MASK, **(LENGTHS | overrides))


def test_mask_in_prompt_is_rejected_but_padding_with_mask_id_is_not(model):
    with pytest.raises(ValueError, match="mask_id"):
        generate(model, torch.tensor([[1, MASK, 2]]), mask_id=MASK, **LENGTHS)
    ids, mask = left_padded(prompts(2, 4), pad=MASK)
    assert (generate(model, ids, attention_mask=mask, mask_id=MASK, **LENGTHS)[:, 4:] != MASK).all()


def test_mask_token_is_never_committed(model):
    def favour_mask(_module, _args, output):
        output.logits[..., MASK] += 100.0
        return output

    handle = model.register_forward_hook(favour_mask)
    try:
        out = generate(model, torch.stack(prompts(5, 5)), mask_id=MASK, **LENGTHS)
    finally:
        handle.remove()
    assert (out != MASK).all()


@pytest.mark.parametrize(
    ("gen_length", "block_length", "steps", "cfg_scale"),
    [(16, 16, 16, 0.0), (16, 8, 4, 0.0), (16, 4, 8, 0.0), (12, 6, 8, 0.0), (8, 4, 10, 0.0), (16, 8, 8, 1.5)],
)
def test_greedy_matches_llada_reference(model, gen_length, block_length, steps, cfg_scale):
    rows = prompts(5, 5, seed=gen_length + block_length + steps)
    with torch.no_grad():
        expected = [llada_reference(model, row, gen_length, block_length, steps, cfg_scale) for row in rows]
    got = generate(model, torch.stack(rows), mask_id=MASK, gen_length=gen_length, block_length=block_length,
                   steps=steps, cfg_scale=cfg_scale)
    assert got.tolist() == [row.tolist() for row in expected]


def test_random_remasking_and_temperature_are_seeded(model):
    ids = torch.stack(prompts(4, 4))

    def run(seed: int, **kwargs) -> torch.Tensor:
        return generate(model, ids, mask_id=MASK, generator=torch.Generator().manual_seed(seed), **LENGTHS, **kwargs)

    greedy = run(0)
    assert run(7, remasking="random").equal(run(7, remasking="random"))
    assert not run(7, remasking="random").equal(greedy)
    assert run(7, temperature=1.0).equal(run(7, temperature=1.0))
    assert not run(7, temperature=1.0).equal(run(8, temperature=1.0))


@pytest.mark.parametrize(("mask_format", "cache"), [("2d", None), ("dream-4d", None), ("2d", "dual"),
                                                     ("dream-4d", "dual"), ("2d", "prefix")])
def test_left_padded_batch_decodes_like_each_prompt_alone(model, monkeypatch, mask_format, cache):
    if mask_format == "dream-4d":
        monkeypatch.setattr(model.config, "model_type", "dream")
    rows = prompts(3, 6, 9)
    ids, mask = left_padded(rows)
    with recorded_calls(model) as calls:
        batched = generate(model, ids, attention_mask=mask, mask_id=MASK, cache=cache, **LENGTHS)
    assert calls[0]["position_ids"][0].tolist() == [0] * 6 + list(range(19))
    assert calls[0]["attention_mask"].dim() == (4 if mask_format == "dream-4d" else 2)
    for row, out in zip(rows, batched, strict=True):
        alone = generate(model, row[None], mask_id=MASK, cache=cache, **LENGTHS)[0]
        assert out[mask.shape[1] - len(row):].equal(alone)


def test_positions_follow_the_mask_for_absolute_position_models():
    """RoPE only sees relative positions, so a uniform shift from left padding is invisible to it; a model
    with absolute position embeddings shows that positions are really passed (and needed)."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    bert = BertForMaskedLM(config).eval()
    with torch.no_grad():
        bert.bert.embeddings.position_embeddings.weight.mul_(20)
    rows = prompts(3, 6, 9)
    ids, mask = left_padded(rows)
    alone = [generate(bert, row[None], mask_id=MASK, **LENGTHS)[0, len(row):] for row in rows]
    batched = generate(bert, ids, attention_mask=mask, mask_id=MASK, **LENGTHS)[:, ids.shape[1]:]
    unpositioned = generate(WithoutPositions(bert), ids, attention_mask=mask, mask_id=MASK, **LENGTHS)
    assert all(b.equal(a) for b, a in zip(batched, alone, strict=True))
    assert not unpositioned[0, ids.shape[1]:].equal(alone[0])


def test_guidance_changes_the_output(model):
    ids = torch.stack(prompts(5, 5))
    plain = generate(model, ids, mask_id=MASK, **LENGTHS)
    guided = generate(model, ids, mask_id=MASK, cfg_scale=1.0, **LENGTHS)
    assert not guided.equal(plain) and (guided != MASK).all()


def test_shift_logits_reads_each_prediction_from_the_previous_position(model):
    ids, mask = left_padded(prompts(4, 6))
    shifted = generate(model, ids, attention_mask=mask, mask_id=MASK, shift_logits=True, **LENGTHS)
    assert not shifted.equal(generate(model, ids, attention_mask=mask, mask_id=MASK, **LENGTHS))

    def shift_by_hand(_module, _args, output):
        output.logits = torch.cat([output.logits[:, :1], output.logits[:, :-1]], dim=1)
        return output

    handle = model.register_forward_hook(shift_by_hand)
    try:
        assert shifted.equal(generate(model, ids, attention_mask=mask, mask_id=MASK, **LENGTHS))
    finally:
        handle.remove()


@pytest.mark.parametrize("steps", [16, 8])
def test_unreachable_threshold_gives_the_plain_sampler(model, steps):
    ids = torch.stack(prompts(5, 5))
    lengths = LENGTHS | {"steps": steps}
    plain = generate(model, ids, mask_id=MASK, **lengths)
    assert generate(model, ids, mask_id=MASK, threshold=1.0, **lengths).equal(plain)


def test_threshold_commits_in_parallel(confident_model):
    ids = torch.stack(prompts(5, 5))
    with recorded_calls(confident_model) as calls:
        out = generate(confident_model, ids, mask_id=MASK, threshold=0.5, **(LENGTHS | {"steps": 16}))
    assert len(calls) < 16 and (out != MASK).all()


@pytest.mark.parametrize(
    ("attention", "padded", "mask_format"),
    [("sdpa", False, "2d"), ("sdpa", True, "2d"), ("eager", False, "2d"), ("eager", True, "2d"),
     ("sdpa", True, "dream-4d")],
)
def test_cached_prefix_forward_is_exact_and_bidirectional(model, monkeypatch, attention, padded, mask_format):
    """With a cache of exactly the current prefix (the first step of a block), the window forward must
    give the full forward's logits: any causal mask slipping in with the cache would break this."""
    model.set_attn_implementation(attention)
    if mask_format == "dream-4d":
        monkeypatch.setattr(model.config, "model_type", "dream")
    ids, mask = left_padded(prompts(7, 10) if padded else prompts(10, 10))
    ids = torch.cat([ids, torch.full((2, 8), MASK)], dim=1)
    mask = torch.cat([mask, torch.ones(2, 8, dtype=torch.long)], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    attention_mask = mask if padded else None
    forward = DLMForward.of(model)
    with torch.no_grad():
        full = forward(ids, attention_mask, positions)
        changed_last = forward(ids.index_fill(1, torch.tensor([17]), 5), attention_mask, positions)
        cache = forward.new_cache()
        forward(ids, attention_mask, positions, cache)
        crop_cache(cache, 12)
        window = forward(ids[:, 12:], attention_mask, positions[:, 12:], cache)
    assert not torch.allclose(changed_last[:, 10], full[:, 10])
    torch.testing.assert_close(window, full[:, 12:], rtol=1e-5, atol=1e-6)
    assert cache.get_seq_length() == 18


@pytest.mark.parametrize(("shift", "cfg_scale"), [(False, 0.0), (True, 0.0), (False, 1.0), (True, 1.0)])
def test_cache_is_exact_for_a_causal_model(model, shift, cfg_scale):
    """In a causal model the prefix never depends on later tokens, so the cached sampler must reproduce
    the uncached one exactly: this checks windows, positions, masks, shifting and guidance with a cache."""
    config = copy.deepcopy(model.config)
    config.is_causal = True
    causal = LlamaForCausalLM(config).eval()
    causal.load_state_dict(model.state_dict())
    ids, mask = left_padded(prompts(3, 6))
    kwargs = dict(attention_mask=mask, mask_id=MASK, shift_logits=shift, cfg_scale=cfg_scale, **LENGTHS)
    assert generate(causal, ids, cache="prefix", **kwargs).equal(generate(causal, ids, **kwargs))


@pytest.mark.parametrize(
    ("attention", "padded", "mask_format"),
    [("sdpa", False, "2d"), ("sdpa", True, "2d"), ("eager", True, "2d"), ("sdpa", True, "dream-4d")],
)
def test_dual_cached_window_forward_is_exact_and_bidirectional(model, monkeypatch, attention, padded, mask_format):
    """With the prefix and suffix cached from a forward of the same tokens (a block's state when its cache
    is built), the window alone must give the full forward's logits: this checks the cut-out cache, the
    mask in the cache's order (prefix, suffix, window), positions, and that no causal mask slips in."""
    model.set_attn_implementation(attention)
    if mask_format == "dream-4d":
        monkeypatch.setattr(model.config, "model_type", "dream")
    ids, mask = left_padded(prompts(7, 10) if padded else prompts(10, 10))
    ids = torch.cat([ids, torch.randint(0, MASK, (2, 4)), torch.full((2, 12), MASK)], dim=1)
    mask = torch.cat([mask, torch.ones(2, 16, dtype=torch.long)], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    attention_mask = mask if padded else None
    forward = DLMForward.of(model)
    window = slice(12, 18)
    with torch.no_grad():
        full = forward(ids, attention_mask, positions)
        changed_suffix = forward(ids.index_fill(1, torch.tensor([20]), 5), attention_mask, positions)
        cache = forward.new_cache()
        forward(ids, attention_mask, positions, cache)
        cache = keep_positions(cache, (slice(0, 12), slice(18, 26)), forward.config)
        kv_mask = None if attention_mask is None else torch.cat([mask[:, :12], mask[:, 18:], mask[:, window]], 1)
        out = forward(ids[:, window], kv_mask, positions[:, window], cache)
    assert not torch.allclose(changed_suffix[:, window], full[:, window])  # the window does see the suffix
    torch.testing.assert_close(out, full[:, window], rtol=1e-5, atol=1e-6)
    assert cache.get_seq_length() == 26  # 20 cached + the 6 window positions the forward appended


def one_layer_copy(model: LlamaForCausalLM) -> LlamaForCausalLM:
    """The model cut to its first layer: its keys depend only on their own token and position, so a cache
    of unchanged tokens is exact and every cached sampler must give the plain sampler's tokens."""
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = 1
    shallow = LlamaForCausalLM(config).eval()
    shallow.load_state_dict(model.state_dict(), strict=False)
    return shallow


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize(("shift", "cfg_scale", "threshold"),
                         [(False, 0.0, None), (True, 0.0, None), (False, 1.0, None), (True, 1.0, 0.5)])
def test_caches_are_exact_where_keys_depend_only_on_their_token(model, cache, shift, cfg_scale, threshold):
    shallow = one_layer_copy(model)
    with torch.no_grad():
        shallow.lm_head.weight.mul_(100)  # confident enough for the 0.5 threshold to fire
    ids, mask = left_padded(prompts(3, 6))
    kwargs = dict(attention_mask=mask, mask_id=MASK, shift_logits=shift, cfg_scale=cfg_scale, threshold=threshold,
                  gen_length=24, block_length=8, steps=24)
    plain = generate(shallow, ids, **kwargs)
    assert generate(shallow, ids, cache=cache, **kwargs).equal(plain)


@contextmanager
def recorded_cache_lengths(model: nn.Module) -> Iterator[list[tuple[int, int, int]]]:
    """(tokens forwarded, cache length before, cache length after) for every forward call of `model`."""
    calls: list[tuple[int, int, int]] = []

    def before(_m, _a, kwargs):
        cache = kwargs.get("cache")
        calls.append((kwargs["input_ids"].shape[1], cache.get_seq_length() if cache is not None else -1))

    def after(_m, _a, kwargs, _out):
        cache = kwargs.get("cache")
        calls[-1] += (cache.get_seq_length() if cache is not None else -1,)

    handles = [model.register_forward_pre_hook(before, with_kwargs=True),
               model.register_forward_hook(after, with_kwargs=True)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("shift", [False, True])
def test_dual_cache_forwards_only_the_window_and_never_grows(model, shift):
    ids, mask = left_padded(prompts(3, 6))
    length, block = 6 + 32, 8
    window = block + int(shift)
    with recorded_cache_lengths(model) as calls:
        out = generate(model, ids, attention_mask=mask, mask_id=MASK, gen_length=32, block_length=block, steps=32,
                       cache="dual", shift_logits=shift)
    assert (out[:, 6:] != MASK).all()
    full = [c for c in calls if c[0] == length]
    later = [c for c in calls if c[0] != length]
    assert len(full) == 4 and all(before == 0 and after == length for _, before, after in full)
    assert len(later) == 32 - 4
    # each later step forwards the window against prefix + suffix, and the cut back after it keeps the cache
    # from growing: every call finds it at the same length
    assert all(c == (window, length - window, length) for c in later)


def test_cache_decodes_everything_with_less_compute(model):
    ids, mask = left_padded(prompts(3, 6))
    kwargs = dict(attention_mask=mask, mask_id=MASK, gen_length=32, block_length=8, steps=16)
    with recorded_calls(model) as plain_calls:
        generate(model, ids, **kwargs)
    with recorded_calls(model) as cached_calls:
        out = generate(model, ids, cache="prefix", **kwargs)
    assert (out != MASK).all() and len(cached_calls) == len(plain_calls)
    assert sum(c["input_ids"].numel() for c in cached_calls) < 0.7 * sum(c["input_ids"].numel() for c in plain_calls)
    assert (generate(model, ids, cache="prefix", shift_logits=True, cfg_scale=1.0, **kwargs) != MASK).all()


def test_models_without_cache_support_fall_back_with_a_warning(model):
    ids = torch.stack(prompts(5, 5))
    with pytest.warns(UserWarning, match="cache='prefix' ignored"):
        cached = generate(WithoutPositions(model), ids, mask_id=MASK, cache="prefix", **LENGTHS)
    assert cached.equal(generate(model, ids, mask_id=MASK, **LENGTHS))


def test_peft_adapter_is_called_with_the_base_model_arguments(model):
    peft = pytest.importorskip("peft")
    ids, mask = left_padded(prompts(3, 6))
    kwargs = dict(attention_mask=mask, mask_id=MASK, **LENGTHS)
    modes = (None, "prefix", "dual")
    expected = [generate(model, ids, cache=mode, **kwargs) for mode in modes]
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    for mode, tokens in zip(modes, expected, strict=True):
        assert generate(lora, ids, cache=mode, **kwargs).equal(tokens)


def test_decode_completions_stops_at_the_first_stop_token(tokenizer):
    eos, eot = tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|eot|>")
    prompt = tokenizer("Q:", add_special_tokens=False)["input_ids"]
    rows = [prompt + tokenizer("42", add_special_tokens=False)["input_ids"] + [eot, 5, eos],
            prompt + tokenizer("7 <answer>", add_special_tokens=False)["input_ids"] + [tokenizer.mask_token_id]]
    width = max(map(len, rows))
    output = torch.tensor([row + [eos] * (width - len(row)) for row in rows])
    assert decode_completions(tokenizer, output, len(prompt), [eos, eot]) == ["42", "7 <answer>"]
