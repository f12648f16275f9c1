"""Ready-made SFT data sets from the Hub (they need a network), selected with `source: preset:NAME`.

Each preset is a set of `DataConfig` fields. s1K is formatted as d1 formats it for SFT (reasoning
and answer tags, system prompt in the user turn), so training matches the evaluation prompts.
"""

from __future__ import annotations

from typing import Any

from dlmtune.tasks.base import SYSTEM_PROMPT

DATASET_PRESETS: dict[str, dict[str, Any]] = {
    # 1,000 hard questions with Gemini reasoning traces (WeFT's SFT data, as in d1)
    "s1k": {
        "source": "simplescaling/s1K",
        "prompt_column": "question",
        "response_template": "<reasoning>{thinking_trajectories[0]}</reasoning>\n<answer>{attempt}</answer>",
        "system_prompt": SYSTEM_PROMPT,
    },
    # the same questions with DeepSeek-R1 traces
    "s1k-1.1": {
        "source": "simplescaling/s1K-1.1",
        "prompt_column": "question",
        "response_template": "<reasoning>{deepseek_thinking_trajectory}</reasoning>\n<answer>{deepseek_attempt}</answer>",
        "system_prompt": SYSTEM_PROMPT,
    },
    # GIFT's full fine-tuning data: a fixed 10k sample of the Tulu 3 chat mixture (messages form)
    "tulu3-10k": {
        "source": "allenai/tulu-3-sft-mixture",
        "limit": 10000,
        "shuffle_seed": 42,
    },
    # 3k long reasoning conversations; longer ones are dropped rather than cut mid-thought
    "mot-3k": {
        "source": "open-r1/Mixture-of-Thoughts",
        "subset": "all",
        "limit": 3000,
        "shuffle_seed": 42,
        "max_length": 2500,
        "overflow": "drop",
    },
}
