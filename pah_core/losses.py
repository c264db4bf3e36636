"""Loss functions of PAH as pure functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    direction: str = "teacher_student",
    reduction: str = "mean",
) -> torch.Tensor:
    """Temperature-scaled KL between softened outputs, summed or averaged over old tasks.

    Logits are (K, B, C): K old tasks, B inputs, C classes. Per task the KL is summed over classes
    and averaged over the B inputs, then multiplied by T^2 (Hinton et al.) so gradients keep their
    scale as T changes. ``direction``: "teacher_student" is KL(teacher || student), the paper's
    formula; "student_teacher" is KL(student || teacher), the official code's. ``reduction``:
    "mean" over tasks (paper, 1/(k-1)) or "sum" (official code). Zero when K == 0.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} differ"
        )
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    t = float(temperature)
    # In fp32 whatever the logits' precision (bf16 under run.precision=bf16; a no-op in fp32).
    log_s = F.log_softmax(student_logits.float() / t, dim=-1)
    log_t = F.log_softmax(teacher_logits.float() / t, dim=-1)
    if direction == "teacher_student":
        kl = (log_t.exp() * (log_t - log_s)).sum(-1)
    elif direction == "student_teacher":
        kl = (log_s.exp() * (log_s - log_t)).sum(-1)
    else:
        raise ValueError(
            f"unknown KL direction {direction!r}: use teacher_student or student_teacher"
        )
    per_task = kl.mean(-1) * (t * t)
    if reduction == "mean":
        return per_task.mean()
    if reduction == "sum":
        return per_task.sum()
    raise ValueError(f"unknown reduction {reduction!r}: use mean or sum")
