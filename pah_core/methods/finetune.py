"""Fine-tuning, the lower bound: cross-entropy on the current task only, no protection at all."""

from __future__ import annotations

from .base import register
from .multihead import MultiHeadMethod


@register
class Finetune(MultiHeadMethod):
    name = "finetune"
    label = "Fine-tune"
    summary = (
        "Lower bound: shared backbone + one head per task, plain cross-entropy on the current task"
    )
