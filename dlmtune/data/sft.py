"""SFT examples as token sequences: chat-rendered prompt, then response + EOS; the prompt is never masked.

A record is either {prompt, response} (column names configurable; the response may instead be built
from several columns with `response_template`) or {messages: [{role, content}, ...]}, whose last
assistant message is the response and everything before it the prompt (later turns are dropped).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from datasets import Dataset, Features, Sequence, Value

from dlmtune.data.config import DataConfig, DataError
from dlmtune.data.sources import Record, load_records

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]
FEATURES = Features(
    {
        "input_ids": Sequence(Value("int32")),
        "prompt_length": Value("int32"),
        "example_id": Value("int64"),
        "length": Value("int32"),
    }
)


def example_parts(record: Record, config: DataConfig) -> tuple[Messages | None, str]:
    """(prompt messages, with the system prompt applied, and response text) of one record; with
    `text_column` (plain documents, as in pretraining) there is no prompt (None) and the text is the answer."""
    fields = record.fields
    where = f"{record.location} (example {record.example_id})"
    if config.text_column is not None:
        text = _text(fields, config.text_column, where)
        if not text.strip():
            raise DataError(f"{where}: empty text; remove the document or fix its source")
        return None, text
    pair_form = config.prompt_column in fields or config.response_column in fields
    if config.response_template is not None or pair_form:
        messages = [{"role": "user", "content": _text(fields, config.prompt_column, where)}]
        if config.response_template is None:
            response = _text(fields, config.response_column, where)
        else:
            response = _render(config.response_template, fields, where)
    elif config.messages_column in fields:
        messages, response = _split_messages(fields[config.messages_column], config.messages_column, where)
    else:
        raise DataError(
            f"{where}: missing fields: expected {config.prompt_column!r} and {config.response_column!r}, "
            f"or {config.messages_column!r}; columns present: {_columns(fields)}"
        )
    if not response.strip():
        raise DataError(f"{where}: empty response; remove the example or fix its source")
    return _with_system_prompt(messages, config), response


def _columns(fields: dict[str, Any]) -> str:
    return ", ".join(fields) or "none"


def _text(fields: dict[str, Any], name: str, where: str) -> str:
    if name not in fields:
        raise DataError(f"{where}: missing field {name!r}; columns present: {_columns(fields)}")
    value = fields[name]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r}: expected a string, got {type(value).__name__}")
    return value


def _render(template: str, fields: dict[str, Any], where: str) -> str:
    try:
        return template.format(**fields)
    except KeyError as error:
        raise DataError(
            f"{where}: missing field {error.args[0]!r} (used by response_template); columns present: {_columns(fields)}"
        ) from None
    except (IndexError, AttributeError, TypeError, ValueError) as error:
        raise DataError(f"{where}: response_template does not fit this record ({error})") from None


def _split_messages(value: Any, column: str, where: str) -> tuple[Messages, str]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: field {column!r}: expected a non-empty list of messages, got {value!r:.80}")
    messages = []
    for i, message in enumerate(value):
        ok = isinstance(message, dict) and all(isinstance(message.get(k), str) for k in ("role", "content"))
        if not ok:
            raise DataError(f"{where}: {column}[{i}]: expected {{'role': str, 'content': str}}, got {message!r:.80}")
        messages.append({"role": message["role"], "content": message["content"]})
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise DataError(f"{where}: field {column!r} has no assistant message to train on")
    return messages[:last], messages[last]["content"]


def _with_system_prompt(messages: Messages, config: DataConfig) -> Messages:
    """Add the configured system prompt unless the record brings its own system message."""
    if not config.system_prompt or any(m["role"] == "system" for m in messages):
        return messages
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
    if config.system_prompt_mode == "system" or first_user is None:
        return [{"role": "system", "content": config.system_prompt}, *messages]
    turn = messages[first_user]
    prefixed = {"role": "user", "content": f"{config.system_prompt}\n\n{turn['content']}"}
    return [*messages[:first_user], prefixed, *messages[first_user + 1 :]]


def _encode_parts(tokenizer: Any, prompt_messages: Messages | None, response: str) -> tuple[list[int], list[int]]:
    """Prompt ids (through the generation prompt; none for a plain document) and response ids ending with EOS."""
    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no EOS token; SFT responses end with EOS and are padded with it")
    prompt_ids: list[int] = []
    if prompt_messages is not None:
        text = tokenizer.apply_chat_template(prompt_messages, add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    return list(prompt_ids), [*response_ids, tokenizer.eos_token_id]


def _fit(prompt_ids: list[int], response_ids: list[int], max_length: int, overflow: str) -> tuple[list[int] | None, str]:
    """The sequence within max_length and what happened: kept, truncated, dropped or prompt_too_long."""
    if len(prompt_ids) + len(response_ids) <= max_length:
        return prompt_ids + response_ids, "kept"
    if len(prompt_ids) >= max_length - 1:  # not even one response token besides EOS would fit
        return None, "prompt_too_long"
    if overflow == "drop":
        return None, "dropped"
    return prompt_ids + response_ids[: max_length - len(prompt_ids) - 1] + response_ids[-1:], "truncated"


def encode_example(
    tokenizer: Any, prompt_messages: Messages, response: str, max_length: int, overflow: str = "truncate"
) -> tuple[list[int], int] | None:
    """(input_ids, prompt_length) of one example, or None when it does not fit and is left out.

    Too long: "truncate" cuts the response so the sequence is max_length long and still ends with
    EOS; "drop" leaves the example out, as does a prompt that leaves no room for a response."""
    prompt_ids, response_ids = _encode_parts(tokenizer, prompt_messages, response)
    ids, _ = _fit(prompt_ids, response_ids, max_length, overflow)
    return None if ids is None else (ids, len(prompt_ids))


def build_sft_dataset(tokenizer: Any, config: DataConfig) -> tuple[Dataset, dict[str, Any]]:
    """The tokenised training set and a report of what was kept, cut and left out.

    Columns: input_ids, prompt_length, example_id (index in the source, stable across runs) and
    length (for group_by_length). The report's `fingerprint` is the data set's content hash, for
    disk caches; `max_length_seen` is the longest example before truncation."""
    columns: dict[str, list] = {name: [] for name in FEATURES}
    outcomes: Counter[str] = Counter()
    longest = 0
    for record in load_records(config):
        prompt_ids, response_ids = _encode_parts(tokenizer, *example_parts(record, config))
        longest = max(longest, len(prompt_ids) + len(response_ids))
        ids, outcome = _fit(prompt_ids, response_ids, config.max_length, config.overflow)
        outcomes[outcome] += 1
        if ids is not None:
            columns["input_ids"].append(ids)
            columns["prompt_length"].append(len(prompt_ids))
            columns["example_id"].append(record.example_id)
            columns["length"].append(len(ids))
    counts = {name: outcomes[name] for name in ("truncated", "dropped", "prompt_too_long")}
    if not columns["input_ids"]:
        raise DataError(
            f"{config.source}: no usable example within max_length={config.max_length} "
            f"({', '.join(f'{k}: {v}' for k, v in counts.items())}; longest example {longest} tokens)"
        )
    if counts["prompt_too_long"]:
        logger.warning(
            "%s: %d examples left out: their prompt alone fills max_length=%d",
            config.source, counts["prompt_too_long"], config.max_length,
        )
    dataset = Dataset.from_dict(columns, features=FEATURES)
    report = {
        "examples": len(dataset),
        **counts,
        "tokens": sum(columns["length"]),
        "max_length_seen": longest,
        "fingerprint": dataset._fingerprint,
    }
    logger.info("%s: %s", config.source, report)
    return dataset, report
