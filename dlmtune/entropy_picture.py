"""The papers' Figure 2 for any model: which answer tokens the model is unsure of, as WeFT sees them.

Entropies come from exactly WeFT's first pass (`Objective.answer_stat` with `token_entropy`: the whole
answer masked, no gradients), so the picture shows the importance weights a WeFT run would start
from. Two panels: the most frequent answer tokens ranked by mean entropy, and one example with every
token shaded by its entropy. An HTML version of the example is written beside the PNG.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from torch import nn  # noqa: E402

from dlmtune.io import write_text_atomic  # noqa: E402
from dlmtune.models.spec import DLMSpec  # noqa: E402
from dlmtune.objectives import get_objective  # noqa: E402
from dlmtune.report import save_figure  # noqa: E402

COLORMAP = "viridis"


@dataclass
class AnswerEntropy:
    """One example's answer: its token ids and the entropy (nats) of each with the answer fully masked."""

    token_ids: list[int]
    entropy: list[float]


def answer_entropies(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], mask_id: int,
                     shift_logits: bool = False) -> list[AnswerEntropy]:
    """Per example (batch row), the entropies of its answer tokens: `weft`'s own first pass."""
    first_pass = get_objective("weft", mask_id=mask_id, shift_logits=shift_logits)
    results = []
    for batch in batches:
        entropy = first_pass.measure_entropy(model, batch)  # [B, L]
        for row in range(entropy.shape[0]):
            answer = batch["answer_mask"][row].bool()
            results.append(AnswerEntropy(batch["input_ids"][row][answer].tolist(), entropy[row][answer].tolist()))
    return results


def sequence_batches(sequences: Iterable[tuple[list[int], int]]) -> Iterator[dict[str, torch.Tensor]]:
    """One unpadded batch per encoded example (token ids, prompt length)."""
    for tokens, prompt_length in sequences:
        ids = torch.tensor([tokens])
        answer = torch.zeros_like(ids, dtype=torch.bool)
        answer[0, prompt_length:] = True
        yield {"input_ids": ids, "attention_mask": torch.ones_like(ids), "answer_mask": answer}


def picture_for_sequences(model: nn.Module, tokenizer, spec: DLMSpec, sequences: list[tuple[list[int], int]],
                          path: str | Path, title: str) -> list[tuple[str, int, float]]:
    """The picture for encoded examples (token ids, prompt length), tokenised as for training."""
    records = answer_entropies(model, sequence_batches(sequences), spec.mask_token_id, spec.shift_logits)
    return render(records, tokenizer, path, title)


def picture_for_examples(model: nn.Module, tokenizer, spec: DLMSpec, examples: list[dict[str, str]],
                         path: str | Path, title: str, limit: int = 64) -> list[tuple[str, int, float]]:
    """The picture for the first `limit` {"prompt", "response"} examples (interleaved over tasks by the
    caller if it wants)."""
    from dlmtune.data import encode_example

    sequences = [encode_example(tokenizer, [{"role": "user", "content": ex["prompt"]}], ex["response"],
                                max_length=sys.maxsize) for ex in examples[:limit]]
    return picture_for_sequences(model, tokenizer, spec, sequences, path, title)


def rank_tokens(records: list[AnswerEntropy], top: int = 30) -> list[tuple[int, int, float]]:
    """(token id, count, mean entropy) of the `top` most frequent answer tokens, highest entropy first."""
    totals: dict[int, list[float]] = {}
    for record in records:
        for token, value in zip(record.token_ids, record.entropy, strict=True):
            totals.setdefault(token, []).append(value)
    frequent = sorted(totals.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:top]
    ranked = [(token, len(values), sum(values) / len(values)) for token, values in frequent]
    return sorted(ranked, key=lambda r: -r[2])


def _label(tokenizer, token_id: int) -> str:
    text = tokenizer.decode([token_id])
    return {"\n": "\\n", " ": "␣", "": f"<{token_id}>"}.get(text, text)


def _shade_example(axis: plt.Axes, tokenizer, record: AnswerEntropy, vmax: float, width: int = 96) -> None:
    """Draw the example as monospaced tokens on a character grid, each boxed in its entropy's colour."""
    cmap = colormaps[COLORMAP]
    x = y = 0
    for token, value in zip(record.token_ids, record.entropy, strict=True):
        text = tokenizer.decode([token])
        shown = "⏎" if text == "\n" else text or "·"
        if x + len(shown) > width:
            x, y = 0, y + 1
        color = cmap(min(value / vmax, 1.0))
        ink = "white" if value / vmax > 0.6 else "black"
        axis.text(x, -y, shown, family="monospace", fontsize=10, color=ink, va="center",
                  bbox={"boxstyle": "square,pad=0.15", "facecolor": color, "edgecolor": "none"})
        x += len(shown)
        if text == "\n":
            x, y = 0, y + 1
    axis.set_xlim(-1, width + 1)
    axis.set_ylim(-y - 1, 1)
    axis.axis("off")


def example_html(tokenizer, record: AnswerEntropy, vmax: float) -> str:
    """The example as HTML spans shaded by entropy (hover shows the value)."""
    cmap = colormaps[COLORMAP]
    spans = []
    for token, value in zip(record.token_ids, record.entropy, strict=True):
        r, g, b, _ = cmap(min(value / vmax, 1.0))
        ink = "white" if value / vmax > 0.6 else "black"
        text = html.escape(tokenizer.decode([token])).replace("\n", "⏎<br>")
        spans.append(f'<span title="{value:.3f} nats" style="background:rgb({r * 255:.0f},{g * 255:.0f},'
                     f'{b * 255:.0f});color:{ink}">{text}</span>')
    return ("<!doctype html><meta charset='utf-8'><title>answer entropy</title>"
            "<p>Each answer token shaded by its entropy with the whole answer masked (WeFT's first pass).</p>"
            f"<pre style='font-size:15px'>{''.join(spans)}</pre>\n")


def render(records: list[AnswerEntropy], tokenizer, path: str | Path, title: str, top: int = 30,
           example: int = 0) -> list[tuple[str, int, float]]:
    """Write the PNG (ranking + shaded example) and the example's HTML; returns the ranking with labels."""
    ranked = rank_tokens(records, top)
    vmax = max(max(r.entropy) for r in records) or 1.0
    fig, (ranking, shaded) = plt.subplots(2, 1, figsize=(11, 10),
                                          gridspec_kw={"height_ratios": [1, 1.3], "hspace": 0.5})
    labels = [_label(tokenizer, token) for token, _, _ in ranked]
    values = [mean for _, _, mean in ranked]
    ranking.bar(range(len(ranked)), values, color=[colormaps[COLORMAP](v / vmax) for v in values])
    ranking.set_xticks(range(len(ranked)), labels, family="monospace", rotation=90)
    ranking.set_ylabel("mean entropy (nats)")
    ranking.set_title(f"{title}: the {len(ranked)} most frequent answer tokens, by mean entropy (answer fully masked)")
    _shade_example(shaded, tokenizer, records[example], vmax)
    shaded.set_title("one example, each token shaded by its entropy (dark = certain, bright = uncertain)")
    fig.colorbar(plt.cm.ScalarMappable(cmap=COLORMAP, norm=plt.Normalize(0, vmax)), ax=shaded,
                 orientation="horizontal", fraction=0.05, label="entropy (nats)")
    path = Path(path)
    save_figure(fig, path)
    write_text_atomic(path.with_suffix(".html"), example_html(tokenizer, records[example], vmax))
    return [(label, count, mean) for label, (_, count, mean) in zip(labels, ranked, strict=True)]


def entropy_command(model_name: str, data: str, out: str | Path, limit: int = 64,
                    trust_remote_code: bool = False) -> list[tuple[str, int, float]]:
    """`dlmtune entropy`: load the model and the examples, measure, render. `data` is a generated task's name
    (its validation split) or any source `dlmtune train` reads (file, folder, Hub id), read the same way."""
    from dlmtune.data import DataConfig, encode_example, load_records
    from dlmtune.data.sft import example_parts
    from dlmtune.models.loading import load_model
    from dlmtune.tasks.generated import GENERATED_TASKS, sft_examples

    title = Path(model_name).name
    if data in GENERATED_TASKS:
        model, tokenizer, spec = load_model(model_name, trust_remote_code=trust_remote_code)
        return picture_for_examples(model, tokenizer, spec, sft_examples(data, limit, seed=0, split="val"), out,
                                    title=title, limit=limit)
    config = DataConfig(source=data, limit=limit)
    parts = [example_parts(record, config) for record in load_records(config)]  # bad data fails before loading
    model, tokenizer, spec = load_model(model_name, trust_remote_code=trust_remote_code)
    sequences = [encode_example(tokenizer, messages, response, max_length=sys.maxsize) for messages, response in parts]
    return picture_for_sequences(model, tokenizer, spec, sequences, out, title=title)
