"""dlmtune: fine-tuning and evaluation of diffusion language models (LLaDA, Dream and kin).

The headline method is WeFT/GIFT (entropy-weighted importance-aware SFT); see `dlmtune.objectives`.
"""

__version__ = "0.1.0"
