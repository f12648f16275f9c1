"""The synthetic pretraining corpus of the embedded base model: domain knowledge and easier puzzles.

The base model plays the role LLaDA-8B-Instruct plays in the papers: when fine-tuning starts it
already knows the tasks' vocabulary and format and half-solves them, so its entropies over an answer
mean something (low on format tokens, high where a real decision is made), while fine-tuning still has
something to teach. So the corpus holds, in the chat and response format the tasks use:

- for three given numbers, every pairwise fact (`17-9=8`, one per line): the raw material of a
  Countdown search, but with no target, so nothing to search for;
- forward evaluation of small expressions, step by step, with the value boxed: the inverse of
  Countdown (which searches for the expression that reaches a value);
- for a partly filled 4x4 grid, the digits each empty cell's row, column and box leave open, one line
  per digit laid out like the grid (the layout of Sudoku traces), counting but never filling a cell;
- merging a partly filled grid with digits handed over for its empty cells: the answer's layout;
- easier instances of the two tasks, with the tasks' own prompts and solver traces: Sudoku puzzles
  with 2-5 empty cells (the demo's have 6-10) and Countdown problems that a sum a+b+c solves.

No held-out item of the demo is in the corpus. The easier instances are there because the tiny model
cannot pick a task's layout up in a few hundred fine-tuning steps from documents in other layouts:
without them, 300 steps of SFT from the base gave 30% of Sudoku cells (chance 25%) and 0.8-3.9% of
Countdown problems (chance 7.2%), measured while building the demo. With sums and differences as the
easy Countdown instances the base already solved 30.9% of the demo's problems (35% of them have such an
answer) and 300 steps of SFT added no clear gain; with sums only, the base solves 13.3%.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dlmtune.data import DiffusionDataCollator, encode_example
from dlmtune.io import write_json_atomic
from dlmtune.models.presets import build_preset_model
from dlmtune.objectives import ObjectiveConfig, get_objective
from dlmtune.synthetic.countdown import NUMBER_RANGE, TARGET_RANGE, in_order, problem_key
from dlmtune.synthetic.countdown import _solutions as countdown_solutions
from dlmtune.synthetic.sudoku import DIGITS, EMPTY, SIZE, candidates, random_puzzle
from dlmtune.synthetic.sudoku import _random_grid as random_grid
from dlmtune.tasks import get_task
from dlmtune.tasks.base import boxed, format_response
from dlmtune.tokenizer import build_tokenizer

DEMO_DATA_SEED = 0  # the seed of the demo's splits (dlmtune.demo.DATA_SEED), whose held-out items stay out


def _chat(question: str, response: str) -> dict[str, str]:
    return {"prompt": question, "response": response}


def pairs_document(rng: random.Random) -> dict[str, str]:
    """Three numbers, then every pair combined with every operator that gives a positive integer: the
    raw material of a Countdown search, read from the prompt, but with no target to reach."""
    numbers = [rng.randint(*NUMBER_RANGE) for _ in range(3)]
    lines = []
    for i, j in itertools.permutations(range(3), 2):
        a, b = numbers[i], numbers[j]
        for op, value in (("+", a + b), ("-", a - b), ("*", a * b), ("/", a // b if a % b == 0 else 0)):
            if value > 0 and (op not in "+*" or i < j):
                lines.append(f"{a}{op}{b}={value}")
    return _chat(f"Numbers: {numbers}", format_response(lines, str(len(lines))))


def evaluation_document(rng: random.Random) -> dict[str, str]:
    """Three numbers and an expression over them to evaluate, answered in Countdown's response format (the
    two steps, then the expression boxed): the forward direction of Countdown, which searches for the
    expression that reaches a target. The expression is given, so nothing is searched."""
    while True:
        numbers = [rng.randint(*NUMBER_RANGE) for _ in range(3)]
        ways = [w for w in countdown_solutions(numbers) if TARGET_RANGE[0] <= w[2] <= TARGET_RANGE[1]]
        if ways:
            expression, steps, value = rng.choice(ways)
            document = _chat(f"Numbers: {numbers}\nEvaluate: {expression}", format_response(steps, boxed(expression)))
            return document | {"item": ("countdown", problem_key({"numbers": numbers, "target": value}))}


def _partial_grid(rng: random.Random, low: int, high: int) -> tuple[str, str]:
    """A random valid full grid and a copy of it with all but `low`..`high` random cells emptied."""
    solution = random_grid(rng)
    keep = set(rng.sample(range(SIZE * SIZE), rng.randint(low, high)))
    return solution, "".join(d if i in keep else EMPTY for i, d in enumerate(solution))


def fill_document(rng: random.Random) -> dict[str, str]:
    """A partly filled grid and the digits of its empty cells, laid out like the grid ("." on the givens);
    the response writes both lines, then the merged grid: Sudoku's trace and answer layout, with the
    deductions handed over instead of made."""
    solution, grid = _partial_grid(rng, 4, 10)
    fills = "".join(solution[i] if d == EMPTY else "." for i, d in enumerate(grid))
    document = _chat(f"Fill in the grid {grid} with {fills}", format_response([grid, fills], solution))
    return document | {"item": ("sudoku", grid)}


def candidates_document(rng: random.Random) -> dict[str, str]:
    """The rule of Sudoku on a partly filled grid: for each digit, a line marking the empty cells its row,
    column and box leave open to it, laid out like the grid; the answer counts the cells left with one
    digit. Nothing is filled and nothing propagated."""
    _, grid = _partial_grid(rng, 4, 10)
    open_to = [candidates(grid, i) if d == EMPTY else [] for i, d in enumerate(grid)]
    lines = [grid] + ["".join(digit if digit in fits else "." for fits in open_to) for digit in DIGITS]
    singles = sum(len(fits) == 1 for fits in open_to)
    document = _chat(f"Which digits fit the empty cells of the grid {grid}?", format_response(lines, str(singles)))
    return document | {"item": ("sudoku", grid)}


EASY_SUDOKU_EMPTY = (2, 5)  # empty cells of the corpus's puzzles; the demo's have 6-10


def easy_sudoku_document(rng: random.Random) -> dict[str, str]:
    """A Sudoku puzzle with few empty cells, as the task asks it and the solver answers it."""
    item = random_puzzle(rng, *EASY_SUDOKU_EMPTY)
    task = get_task("sudoku")
    return _chat(task.question(item), task.reference_response(item)) | {"item": ("sudoku", item["puzzle"])}


def easy_countdown_document(rng: random.Random) -> dict[str, str]:
    """A Countdown problem whose answer is the sum a+b+c, as the task asks it and the solver answers it (an
    in-order sum is the solver's first try): the format and the steps, without the differences, products
    and quotients most demo problems need."""
    while True:
        numbers = [rng.randint(*NUMBER_RANGE) for _ in range(3)]
        targets = sorted({v for expression, _, v in in_order(numbers) if TARGET_RANGE[0] <= v <= TARGET_RANGE[1]
                          and not set(expression) & set("-*/")})
        if targets:
            item = {"numbers": numbers, "target": rng.choice(targets)}
            task = get_task("countdown")
            return _chat(task.question(item), task.reference_response(item)) | {"item": ("countdown", problem_key(item))}


DOCUMENTS: dict[str, Callable[[random.Random], dict[str, str]]] = {
    "pairs": pairs_document,
    "evaluation": evaluation_document,
    "fill": fill_document,
    "candidates": candidates_document,
    "sudoku": easy_sudoku_document,
    "countdown": easy_countdown_document,
}
# The order the corpus draws kinds in, round and round. The arithmetic kinds come twice: with each kind
# once, the base knew 25% of the one-digit facts after 4500 steps (all of a pairs document's results masked
# at once, greedy); with these shares, 82% (measured while building the demo).
KIND_ROTATION = ("pairs", "evaluation", "fill", "candidates", "sudoku", "countdown", "pairs", "evaluation")


def held_out_items() -> set[tuple]:
    """The evaluation items of the demo (test and validation splits of every generated task at the demo's
    data seed), as the keys documents are checked against: a Sudoku puzzle string; a Countdown problem's
    sorted numbers and target."""
    from dlmtune.synthetic.splits import DEFAULT_N_TEST, DEFAULT_N_VAL, make_splits

    splits = {task: make_splits(task, 0, DEFAULT_N_VAL, DEFAULT_N_TEST, DEMO_DATA_SEED) for task in ("sudoku", "countdown")}
    keys = {("sudoku", item["puzzle"]) for part in ("test", "val") for item in splits["sudoku"][part]}
    return keys | {("countdown", problem_key(item)) for part in ("test", "val") for item in splits["countdown"][part]}


def corpus(n: int, seed: int) -> list[dict[str, str]]:
    """`n` documents ({"prompt", "response"}, like SFT examples), the kinds in turn, deterministic for `seed`.
    A document about a held-out evaluation item (its puzzle grid; its numbers with an expression reaching its
    target) is drawn again, so the base never sees one."""
    rng = random.Random(seed)
    kinds = [DOCUMENTS[kind] for kind in KIND_ROTATION]
    held_out = held_out_items()
    documents = []
    for i in range(n):
        while True:
            document = kinds[i % len(kinds)](rng)
            if document.pop("item", None) not in held_out:
                break
        documents.append(document)
    return documents


# --- the recipe -------------------------------------------------------------------------------------

SHIPPED_BASE = Path(__file__).parent / "assets" / "base-tiny"
CACHED_BASE = Path.home() / ".cache" / "dlmtune" / "base-tiny"


@dataclass(frozen=True)
class PretrainConfig:
    """The shipped base is built with these defaults (`dlmtune pretrain --preset tiny`). `steps` and
    `batch_size` are Trainer's `max_steps` and `per_device_train_batch_size` (see `train_args`)."""

    preset: str = "tiny"
    documents: int = 60000
    steps: int = 4500
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.1
    conditional: bool = True  # mask only the response (instruction-style); False: the whole rendered chat
    t_sampling: str = "stratified"  # noise levels of a batch spread evenly over [0, 1): a less noisy loss
    seed: int = 0

    def train_args(self) -> TrainArgs:
        return TrainArgs(max_steps=self.steps, per_device_train_batch_size=self.batch_size,
                         learning_rate=self.learning_rate, warmup_ratio=self.warmup_ratio,
                         weight_decay=self.weight_decay, seed=self.seed)


def encode(tokenizer, prompt: str, response: str) -> tuple[list[int], int]:
    """Token ids of chat-rendered prompt + response + EOS, and the prompt's length ("" = no prompt)."""
    messages = [{"role": "user", "content": prompt}] if prompt else None
    return encode_example(tokenizer, messages, response, max_length=sys.maxsize)


def render_chat(tokenizer, doc: dict[str, str]) -> str:
    """The document as one chat text (user turn, assistant turn), for unconditional pretraining."""
    return tokenizer.apply_chat_template([{"role": "user", "content": doc["prompt"]},
                                          {"role": "assistant", "content": doc["response"]}], tokenize=False)


def length_grouped_batches(sequences: list[tuple[list[int], int]], batch_size: int, pad_id: int,
                           rng: random.Random) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of batches of similar length, in random order; EOS-padded, padding counted as answer. Each
    row carries its index in `sequences` as `example_id`: the key of the entropy caches of `weft-k4` and
    `gift-star`."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]) + 8 * rng.random())
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(chunks)
    collate = DiffusionDataCollator(pad_token_id=pad_id)
    for chunk in chunks:
        yield collate([{"input_ids": sequences[i][0], "prompt_length": sequences[i][1], "example_id": i}
                       for i in chunk])


@dataclass(frozen=True)
class TrainArgs:
    """Training hyperparameters, named and meaning exactly what they do in `transformers.TrainingArguments`
    (transformers >= 5 spells `warmup_ratio` as a fractional `warmup_steps`), so a Trainer port keeps them."""

    max_steps: int
    per_device_train_batch_size: int
    learning_rate: float
    warmup_ratio: float = 0.05
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    seed: int = 0
    logging_steps: int = 10

    def warmup_steps(self) -> int:
        """Trainer's rule: ceil(ratio * max_steps)."""
        return math.ceil(self.warmup_ratio * self.max_steps)


NO_DECAY_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def trainer_optimizer(model, args: TrainArgs) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with weight decay on every parameter but biases and norm weights (Trainer's
    `get_decay_parameter_names`), and the `lr_scheduler_type` schedule with linear warm-up."""
    from transformers import get_scheduler
    from transformers.trainer_pt_utils import get_parameter_names

    decay = set(get_parameter_names(model, [torch.nn.LayerNorm], NO_DECAY_PATTERNS))
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in params if n in decay], "weight_decay": args.weight_decay},
              {"params": [p for n, p in params if n not in decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  eps=args.adam_epsilon)
    schedule = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=args.warmup_steps(),
                             num_training_steps=args.max_steps)
    return optimizer, schedule


def train_model(model, sequences: list[tuple[list[int], int]], args: TrainArgs, *, objective: str, mask_id: int,
                pad_id: int, objective_config: ObjectiveConfig | None = None, desc: str = "train",
                progress: bool = True, on_step: Callable[[int, float], None] | None = None) -> tuple[list[tuple[int, float]], float]:
    """`args.max_steps` optimizer steps of `get_objective(objective)` on `sequences`, as `transformers.Trainer`
    takes them: one batch, one loss, backward, clip to `max_grad_norm`, AdamW step, scheduler step. Batches are
    length-grouped and reshuffled every epoch from `args.seed`. Returns the loss curve (mean loss over each
    `logging_steps` window, keyed by the last step) and the seconds taken. `on_step(step, loss)` is called
    after every optimizer step (a `TrainerCallback.on_step_end`)."""
    loss_fn = get_objective(objective, objective_config, mask_id=mask_id)
    optimizer, schedule = trainer_optimizer(model, args)
    generator, rng = torch.Generator().manual_seed(args.seed), random.Random(args.seed)
    curve, window, step, start = [], [], 0, time.perf_counter()
    model.train()
    with tqdm(total=args.max_steps, desc=desc, unit="step", disable=not progress, leave=False) as bar:
        while step < args.max_steps:
            for batch in length_grouped_batches(sequences, args.per_device_train_batch_size, pad_id, rng):
                loss = loss_fn(model, batch, generator).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                window.append(loss.item())
                step += 1
                bar.update(1)
                if on_step is not None:
                    on_step(step, window[-1])
                if step % args.logging_steps == 0 or step == args.max_steps:
                    curve.append((step, sum(window) / len(window)))
                    bar.set_postfix(loss=f"{curve[-1][1]:.3f}")
                    window = []
                if step >= args.max_steps:
                    break
    model.eval()
    return curve, time.perf_counter() - start


def pretrain(config: PretrainConfig, out_dir: str | Path, progress: bool = True) -> Path:
    """Build the base model: a fresh preset trained with the plain masked-diffusion loss (`sft` with the
    whole document as the answer) on `corpus`; saved with its tokenizer and `pretrain.json` (the recipe,
    its Trainer hyperparameters, the wall time and the loss curve) to `out_dir`. Deterministic for a seed
    (single-threaded torch; the same machine and torch build give the same weights)."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    tokenizer = build_tokenizer()
    model = build_preset_model(config.preset, tokenizer, seed=config.seed)
    documents = corpus(config.documents, config.seed)
    if config.conditional:
        sequences = [encode(tokenizer, doc["prompt"], doc["response"]) for doc in documents]
    else:
        sequences = [encode(tokenizer, "", render_chat(tokenizer, doc)) for doc in documents]
    args = config.train_args()
    curve, seconds = train_model(model, sequences, args, objective="sft", mask_id=tokenizer.mask_token_id,
                                 pad_id=tokenizer.eos_token_id, objective_config=ObjectiveConfig(t_sampling=config.t_sampling),
                                 desc=f"pretrain {config.preset}", progress=progress)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_json_atomic(out_dir / "pretrain.json", {
        "command": f"dlmtune pretrain --preset {config.preset} --seed {config.seed}",
        "config": asdict(config), "trainer_arguments": asdict(args), "objective": "sft",
        "parameters": sum(p.numel() for p in model.parameters()), "torch": torch.__version__,
        "train_seconds": seconds, "total_seconds": time.perf_counter() - start, "loss_curve": curve})
    return out_dir


def ensure_base(path: str | Path | None = None) -> Path:
    """The base model folder: `path` if given, else the shipped copy, else one built once and cached."""
    if path is not None:
        return Path(path)
    for folder in (SHIPPED_BASE, CACHED_BASE):
        if (folder / "model.safetensors").exists():
            return folder
    return pretrain(PretrainConfig(), CACHED_BASE)
