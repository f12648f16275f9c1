"""The registered objectives end to end on the `micro` preset: every name runs forward and backward, WeFT
with constant beta is exactly SFT, the optimised step equals a straightforward full-logits step, the first
pass runs without dropout and without gradients, and GIFT* measures with the initial / base model."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model

import dlmtune.objectives.registry as registry
from dlmtune.models.forward import shift_logits
from dlmtune.models.presets import build_preset_model, preset_config
from dlmtune.objectives import (
    OBJECTIVES,
    ObjectiveConfig,
    cart_weights,
    get_objective,
    importance_mask_probs,
    masked_diffusion_loss,
    sample_mask,
    sample_t,
    uniform_mask_probs,
)
from dlmtune.objectives.registry import ALIASES, Importance, Weft

from .conftest import spread_model_from

ALL_NAMES = sorted([*OBJECTIVES, *ALIASES])  # + gift, gift*, weft-sw
IMPORTANCE_NAMES = [n for n in ALL_NAMES if issubclass(OBJECTIVES[ALIASES.get(n, n)], Weft)]


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def _run(objective, model, batch, seed: int):
    """One step with a fresh generator; returns (output, gradients)."""
    model.zero_grad(set_to_none=True)
    out = objective(model, batch, torch.Generator().manual_seed(seed))
    out.loss.backward()
    return out, _grads(model)


@pytest.fixture
def recorded_masks(monkeypatch):
    """Record (p_mask, masked) of every `sample_mask` call the registry makes."""
    calls = []

    def recording(p_mask, answer_mask, generator=None):
        masked = sample_mask(p_mask, answer_mask, generator)
        calls.append((p_mask.clone(), masked.clone()))
        return masked

    monkeypatch.setattr(registry, "sample_mask", recording)
    return calls


# ---------------------------------------------------------------------------- every objective runs
@pytest.mark.parametrize("shift", [False, True], ids=["aligned", "shifted"])
@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_objective_runs_forward_and_backward(micro_model, tokenizer, chat_batch, name, shift):
    objective = get_objective(name, mask_id=tokenizer.mask_token_id, shift_logits=shift)
    out, grads = _run(objective, micro_model, chat_batch, seed=0)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and out.loss > 0
    trainable = [n for n, p in micro_model.named_parameters() if p.requires_grad]
    assert sorted(grads) == sorted(trainable)
    for key, grad in grads.items():
        assert torch.isfinite(grad).all(), key
        assert grad.abs().sum() > 0, key
    expected = {"mean_t", "mask_fraction", "mean_p_mask"}
    if name in IMPORTANCE_NAMES:
        expected |= {"beta_ref"} | ({"mean_entropy"} if name != "weft-nll" else set())
    assert set(out.metrics) == expected
    for value in out.metrics.values():
        assert value.ndim == 0 and torch.isfinite(value) and not value.requires_grad
    if "mean_entropy" in out.metrics:  # entropy of a ~100-token vocabulary: in (0, log V]
        assert 0 < out.metrics["mean_entropy"] <= torch.log(torch.tensor(float(len(tokenizer)))) + 1e-4
        assert out.metrics["beta_ref"] > 0


def test_registry_names_and_config_validation():
    assert set(OBJECTIVES) == {"sft", "weft", "weft-entropy", "weft-nll", "gift-star", "sft-sw", "cart"}
    assert type(get_objective("gift", mask_id=1)) is OBJECTIVES["weft"]
    assert type(get_objective("gift*", mask_id=1)) is OBJECTIVES["gift-star"]
    assert type(get_objective("weft-sw", mask_id=1)) is OBJECTIVES["sft-sw"]
    assert get_objective("cart", mask_id=1).normalize == "masked"
    assert get_objective("cart", ObjectiveConfig(normalize="token"), mask_id=1).normalize == "token"
    assert get_objective("weft", mask_id=1).normalize == "token"
    with pytest.raises(ValueError, match="known objectives"):
        get_objective("weft2", mask_id=1)
    k4 = get_objective("weft-k4", ObjectiveConfig(eps=0.01), mask_id=1)  # a variant: its settings over the caller's
    assert type(k4) is OBJECTIVES["weft"] and k4.config.beta_refresh_every == 4 and k4.config.eps == 0.01
    assert k4.cache is not None and get_objective("sft-full-logits", mask_id=1).config.tap_head is False
    for bad in ({"normalize": "batch"}, {"t_sampling": "sobol"}, {"eps": 0.0}, {"eps": 1.0},
                {"beta_power": 0.0}, {"beta_refresh_every": -1}):
        with pytest.raises(ValueError):
            ObjectiveConfig(**bad)


def _first_pass_reference(model, batch, mask_id, shift):
    """Entropy and target NLL [B, L] of the full logits with the whole answer masked (float64)."""
    ids, answer = batch["input_ids"], batch["answer_mask"]
    with torch.no_grad():
        logits = model.eval()(input_ids=torch.where(answer, mask_id, ids), attention_mask=batch["attention_mask"]).logits
    model.train()
    logp = F.log_softmax((shift_logits(logits) if shift else logits).double(), -1)
    entropy = torch.where(answer, -(logp.exp() * logp).sum(-1), 0.0)
    nll = torch.where(answer, -logp.gather(-1, ids[..., None])[..., 0], 0.0)
    return entropy, nll


@pytest.mark.parametrize("shift", [False, True], ids=["aligned", "shifted"])
def test_each_objective_measures_its_beta(spread_model, tokenizer, chat_batch, shift):
    """weft / gift / gift-star / sft-sw: sqrt(H); weft-entropy: H; weft-nll: -log p(x0); beta_power is
    honoured; beta is 0 off the answer."""
    mask_id = tokenizer.mask_token_id
    entropy, nll = _first_pass_reference(spread_model, chat_batch, mask_id, shift)
    expected = {"weft": entropy.sqrt(), "gift": entropy.sqrt(), "gift-star": entropy.sqrt(),
                "sft-sw": entropy.sqrt(), "weft-sw": entropy.sqrt(), "weft-entropy": entropy, "weft-nll": nll}
    assert set(expected) | {"gift*"} == set(IMPORTANCE_NAMES)
    config = ObjectiveConfig(chunk_size=4)
    for name, beta in expected.items():
        got = get_objective(name, config, mask_id=mask_id, shift_logits=shift).importance(spread_model, chat_batch)
        torch.testing.assert_close(got.beta.double(), beta, rtol=1e-5, atol=1e-6, msg=name)
        if got.entropy is not None:
            torch.testing.assert_close(got.entropy.double(), entropy, rtol=1e-5, atol=1e-6, msg=name)
    quarter = get_objective("weft", ObjectiveConfig(beta_power=0.25), mask_id=mask_id, shift_logits=shift)
    torch.testing.assert_close(quarter.importance(spread_model, chat_batch).beta.double(), entropy**0.25,
                               rtol=1e-5, atol=1e-6)


def test_metrics_values(spread_model, tokenizer, chat_batch, recorded_masks):
    """Metrics are the answer-token means: mask_fraction = masked / answer tokens, mean_p_mask = mean p
    over the answer, mean_entropy = mean H over the answer (not over the prompt's zeros), beta_ref = the
    batch mean of each row's mean beta; mean_t = mean of the sampled t."""
    mask_id = tokenizer.mask_token_id
    answer = chat_batch["answer_mask"]
    entropy, _ = _first_pass_reference(spread_model, chat_batch, mask_id, False)
    out = get_objective("weft", mask_id=mask_id)(spread_model, chat_batch, torch.Generator().manual_seed(2))
    p, masked = recorded_masks[-1]
    t = sample_t(answer.shape[0], torch.Generator().manual_seed(2))
    n = answer.sum()
    row_beta_means = torch.stack([entropy[b][answer[b]].sqrt().mean() for b in range(answer.shape[0])])
    torch.testing.assert_close(out.metrics["mean_t"], t.mean())
    torch.testing.assert_close(out.metrics["mask_fraction"], masked.sum() / n)
    torch.testing.assert_close(out.metrics["mean_p_mask"], p[answer].mean())
    torch.testing.assert_close(out.metrics["mean_entropy"].double(), entropy[answer].mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.metrics["beta_ref"].double(), row_beta_means.mean(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- reduction to SFT
class ConstantBeta(Weft):
    """WeFT whose first pass returns a constant beta on the answer (the reduction the paper states)."""

    constant = 1.0

    def importance(self, model, batch):
        return Importance(torch.where(batch["answer_mask"].bool(), self.constant, 0.0))


@pytest.mark.parametrize("constant", [0.05, 0.1, 0.7, 3.0])
def test_weft_with_constant_beta_is_sft(micro_model, tokenizer, chat_batch, recorded_masks, constant):
    """Same generator state: identical p, identical masks, identical loss and gradients (torch.equal)."""
    mask_id = tokenizer.mask_token_id
    weft = ConstantBeta(mask_id=mask_id)
    weft.constant = constant
    sft_out, sft_grads = _run(get_objective("sft", mask_id=mask_id), micro_model, chat_batch, seed=3)
    weft_out, weft_grads = _run(weft, micro_model, chat_batch, seed=3)
    (p_sft, m_sft), (p_weft, m_weft) = recorded_masks
    assert m_sft.any() and torch.equal(p_sft, p_weft) and torch.equal(m_sft, m_weft)
    assert torch.equal(sft_out.loss, weft_out.loss)
    assert all(torch.equal(sft_grads[k], weft_grads[k]) for k in sft_grads)


@pytest.mark.parametrize("name", ["weft", "gift", "gift-star", "weft-entropy", "weft-nll", "sft-sw"])
def test_real_first_pass_with_constant_entropy_is_sft(micro_model, tokenizer, chat_batch, recorded_masks, name):
    """A zero LM head predicts the uniform distribution everywhere, so the real first pass measures
    H_i = log V and NLL_i = log V for every token: beta is constant and each importance objective must
    reproduce SFT exactly (sft-sw: weights exactly 1)."""
    with torch.no_grad():
        micro_model.lm_head.weight.zero_()
    mask_id = tokenizer.mask_token_id
    sft_out, sft_grads = _run(get_objective("sft", mask_id=mask_id), micro_model, chat_batch, seed=4)
    out, grads = _run(get_objective(name, mask_id=mask_id), micro_model, chat_batch, seed=4)
    (p_sft, m_sft), (p_obj, m_obj) = recorded_masks
    assert torch.equal(p_sft, p_obj) and torch.equal(m_sft, m_obj)
    assert torch.equal(sft_out.loss, out.loss)
    assert all(torch.equal(sft_grads[k], grads[k]) for k in sft_grads)


def test_weft_with_real_beta_is_not_sft(spread_model, tokenizer, chat_batch, recorded_masks):
    """The counterpart: a real (non-constant) beta tilts p, so the same generator state gives other masks."""
    mask_id = tokenizer.mask_token_id
    beta = get_objective("weft", mask_id=mask_id).importance(spread_model, chat_batch).beta
    above_mean = beta > registry.beta_reference(beta, chat_batch["answer_mask"])[:, None]
    masks_differ = 0
    for seed in range(5):
        _run(get_objective("sft", mask_id=mask_id), spread_model, chat_batch, seed=seed)
        _run(get_objective("weft", mask_id=mask_id), spread_model, chat_batch, seed=seed)
        (p_sft, m_sft), (p_weft, m_weft) = recorded_masks[-2:]
        # the tilt: tokens with beta above the row's mean are masked more often than under SFT, others less
        assert (p_weft[above_mean] > p_sft[above_mean]).all()
        assert (p_weft[~above_mean] <= p_sft[~above_mean]).all()
        masks_differ += not torch.equal(m_sft, m_weft)
    assert masks_differ >= 3


# ------------------------------------------------------------- optimised step vs straightforward step
def reference_step(model, batch, seed, name, mask_id, shift, normalize):
    """The step written out plainly: full [B, L, V] logits, `masked_diffusion_loss`.
    weft: entropy of the full logits with the whole answer masked, eval mode, no grad; beta = sqrt(H)."""
    ids, attention, answer = batch["input_ids"], batch["attention_mask"], batch["answer_mask"]
    generator = torch.Generator().manual_seed(seed)

    def full_logits(x):
        logits = model(input_ids=x, attention_mask=attention).logits
        return shift_logits(logits) if shift else logits

    beta = None
    if name == "weft":
        model.eval()
        with torch.no_grad():
            logp = F.log_softmax(full_logits(torch.where(answer, mask_id, ids)).float(), -1)
        model.train()
        beta = torch.where(answer, -(logp.exp() * logp).sum(-1), 0.0).clamp_min(0).sqrt()
    t = sample_t(ids.shape[0], generator)
    p = importance_mask_probs(t, beta, answer) if name == "weft" else uniform_mask_probs(t, answer)
    masked = sample_mask(p, answer, generator)
    logits = full_logits(torch.where(masked, mask_id, ids))
    if name == "cart":  # weights replace 1/p; "masked" normalisation
        loss = masked_diffusion_loss(logits, ids, masked, None, answer, cart_weights(masked, attention.bool(), 0.3),
                                     normalize="masked")
    else:
        loss = masked_diffusion_loss(logits, ids, masked, p, answer, normalize=normalize)
    return loss, masked


@pytest.mark.parametrize("shift", [False, True], ids=["aligned", "shifted"])
@pytest.mark.parametrize(("name", "normalize"),
                         [("sft", "token"), ("sft", "sequence"), ("weft", "token"), ("weft", "sequence"),
                          ("cart", None)])
def test_optimised_step_equals_straightforward(spread_model, tokenizer, chat_batch, recorded_masks, name, normalize,
                                               shift):
    micro_model = spread_model  # non-constant beta, so weft's first pass matters
    mask_id = tokenizer.mask_token_id
    micro_model.train()
    micro_model.zero_grad(set_to_none=True)
    ref_loss, ref_masked = reference_step(micro_model, chat_batch, 11, name, mask_id, shift, normalize)
    ref_loss.backward()
    ref_grads = _grads(micro_model)
    config = ObjectiveConfig(normalize=normalize, chunk_size=5, tap_head=True)
    out, grads = _run(get_objective(name, config, mask_id=mask_id, shift_logits=shift), micro_model, chat_batch, 11)
    assert torch.equal(recorded_masks[-1][1], ref_masked) and ref_masked.any()
    torch.testing.assert_close(out.loss, ref_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == ref_grads.keys()
    for key in ref_grads:
        torch.testing.assert_close(grads[key], ref_grads[key], rtol=1e-4, atol=1e-6, msg=key)


# ---------------------------------------------------------------------------- the first pass
@pytest.mark.parametrize("name", ["weft", "weft-entropy", "weft-nll", "sft-sw"])
@pytest.mark.parametrize("start_training", [True, False])
def test_first_pass_eval_mode_no_grad_and_mode_restored(micro_model, tokenizer, chat_batch, name, start_training):
    """A forward hook sees pass 1 in eval mode without gradients, pass 2 in the caller's mode with them;
    the caller's mode is restored. (gift-star: see the two GIFT* tests.)"""
    micro_model.train(start_training)
    seen = []
    micro_model.register_forward_hook(lambda m, a, o: seen.append((m.training, torch.is_grad_enabled())))
    objective = get_objective(name, mask_id=tokenizer.mask_token_id)
    out = objective(micro_model, chat_batch, torch.Generator().manual_seed(0))
    assert seen == [(False, False), (start_training, True)]
    assert micro_model.training == start_training
    assert all(m.training == start_training for m in micro_model.modules())
    assert out.loss.requires_grad
    beta = objective.importance(micro_model, chat_batch).beta
    assert not beta.requires_grad and beta.grad_fn is None


def test_first_pass_restores_mode_on_error(micro_model, tokenizer, chat_batch):
    def fail_without_grad(module, args, kwargs):
        if not torch.is_grad_enabled():
            raise RuntimeError("boom")

    micro_model.train().register_forward_pre_hook(fail_without_grad, with_kwargs=True)
    with pytest.raises(RuntimeError, match="boom"):
        get_objective("weft", mask_id=tokenizer.mask_token_id)(micro_model, chat_batch)
    assert micro_model.training


def test_first_pass_has_no_dropout(tokenizer, chat_batch):
    """With attention dropout 0.5 a train-mode forward is random; the measured beta must not be."""
    config = preset_config("micro", tokenizer)
    config.attention_dropout = 0.5
    torch.manual_seed(0)
    model = type(build_preset_model("micro", tokenizer))(config).train()
    ids = chat_batch["input_ids"]
    with torch.no_grad():
        assert not torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)  # dropout is live
    objective = get_objective("weft", mask_id=tokenizer.mask_token_id)
    torch.manual_seed(1)
    first = objective.importance(model, chat_batch).beta
    torch.manual_seed(2)
    assert torch.equal(first, objective.importance(model, chat_batch).beta)
    assert model.training


# ---------------------------------------------------------------------------- GIFT*
def _lora(model):
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # raised inside peft
@pytest.mark.parametrize("name", ["gift-star", "gift*"])
def test_gift_star_with_lora_measures_the_base_model(tokenizer, chat_batch, name):
    """beta(gift-star, adapted LoRA model) == beta(weft, base model without adapter), while beta(weft,
    adapted model) is clearly different: a gift-star that used the adapted model fails the first check."""
    mask_id = tokenizer.mask_token_id
    base = spread_model_from(tokenizer, seed=0)
    weft = get_objective("weft", mask_id=mask_id)
    beta_base = weft.importance(base, chat_batch).beta
    model = _lora(copy.deepcopy(base))
    # zero adapters (peft's init): the adapted model is the base model
    torch.testing.assert_close(weft.importance(model, chat_batch).beta, beta_base, rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if "lora_B" in param_name:
                param.normal_(std=0.5, generator=torch.Generator().manual_seed(len(param_name)))
    beta_adapted = weft.importance(model, chat_batch).beta
    assert (beta_adapted - beta_base).abs().max() > 1e-2  # the adapter really changes the entropies
    with torch.no_grad():
        adapted_logits = model(input_ids=chat_batch["input_ids"]).logits
    star = get_objective(name, mask_id=mask_id)
    torch.testing.assert_close(star.importance(model, chat_batch).beta, beta_base, rtol=1e-6, atol=1e-6)
    assert star._frozen is None  # no weight copy with an adapter
    with torch.no_grad():  # adapters are enabled again afterwards
        assert torch.equal(model(input_ids=chat_batch["input_ids"]).logits, adapted_logits)
    model.train()
    inner = model.get_base_model()
    q_proj = inner.model.layers[0].self_attn.q_proj
    seen = []
    inner.register_forward_hook(lambda m, a, o: seen.append((m.training, torch.is_grad_enabled(), q_proj.disable_adapters)))
    out, grads = _run(star, model, chat_batch, seed=0)
    # pass 1: eval mode, no grad, adapters off; pass 2: training, grad, adapters on; mode restored
    assert seen == [(False, False, True), (True, True, False)] and model.training
    assert torch.isfinite(out.loss) and out.loss > 0
    assert grads and all("lora_" in k and torch.isfinite(g).all() for k, g in grads.items())


def test_gift_star_full_model_keeps_initial_beta(spread_model, tokenizer, chat_batch):
    """Full fine-tuning: the reference is a frozen copy of the weights at the first step. After SGD steps,
    gift-star's beta is unchanged (bit for bit) while weft's follows the new weights."""
    micro_model = spread_model
    mask_id = tokenizer.mask_token_id
    star, weft = get_objective("gift-star", mask_id=mask_id), get_objective("weft", mask_id=mask_id)
    beta0 = star.importance(micro_model, chat_batch).beta
    optimizer = torch.optim.SGD(micro_model.parameters(), lr=2.0)
    for seed in range(3):
        optimizer.zero_grad()
        star(micro_model, chat_batch, torch.Generator().manual_seed(seed)).loss.backward()
        optimizer.step()
    assert torch.equal(star.importance(micro_model, chat_batch).beta, beta0)
    beta_now = weft.importance(micro_model, chat_batch).beta
    assert (beta_now - beta0).abs().max() > 1e-3  # the weights did change what weft measures
    assert all(not p.requires_grad for p in star._frozen.parameters())
    assert not any(m.training for m in star._frozen.modules())  # the reference runs without dropout
    assert micro_model.training
    assert not any(p is q for p in star._frozen.parameters() for q in micro_model.parameters())
    assert all(p.requires_grad for p in micro_model.parameters())


# ---------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("name", ALL_NAMES)
def test_batch_without_answer_tokens(micro_model, tokenizer, chat_batch, name):
    """No answer token anywhere: loss exactly 0, finite gradients. A batch with a one-token answer and an
    empty answer next to a normal one stays finite."""
    objective = get_objective(name, mask_id=tokenizer.mask_token_id)
    empty = dict(chat_batch, answer_mask=torch.zeros_like(chat_batch["answer_mask"]))
    out, grads = _run(objective, micro_model, empty, seed=0)
    assert out.loss.item() == 0.0
    assert all(torch.isfinite(v) for v in out.metrics.values())
    assert all(torch.isfinite(g).all() for g in grads.values())
    mixed = chat_batch["answer_mask"].clone()
    mixed[1] = False
    mixed[2] = False
    mixed[2, -1] = True
    out, grads = _run(objective, micro_model, dict(chat_batch, answer_mask=mixed), seed=1)
    assert torch.isfinite(out.loss) and all(torch.isfinite(g).all() for g in grads.values())
