"""Task-agnostic prediction for task-incremental models: pick the task, then the class.

A multi-head model (PAH's generated heads, the baselines' heads) scores an image under the head of
every seen task: ``logits`` (K, B, C). A rule picks one task per image, and the prediction is that
task's best class, a class among all K * C seen classes (class-incremental evaluation). The rules
are pure functions of the logits, or of features for PAH's prototype rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Rules that need only the heads' logits, then the one that needs PAH's prototypes.
LOGIT_RULES = ("max_softmax", "min_entropy", "max_energy")
RULES = (*LOGIT_RULES, "nearest_prototype")


def task_scores(logits: torch.Tensor, rule: str) -> torch.Tensor:
    """(K, B, C) logits -> (K, B) scores, higher = more likely the image's task.

    max_softmax: the head's largest softmax probability (Hendrycks & Gimpel 2017);
    min_entropy: minus the entropy of the head's softmax;
    max_energy: the logsumexp of the head's logits, i.e. minus the free energy (Liu et al. 2020)."""
    if rule == "max_softmax":
        return F.softmax(logits, dim=-1).amax(dim=-1)
    if rule == "min_entropy":
        logp = F.log_softmax(logits, dim=-1)
        return (logp.exp() * logp).sum(dim=-1)
    if rule == "max_energy":
        return torch.logsumexp(logits, dim=-1)
    raise ValueError(f"unknown task-inference rule {rule!r}: one of {', '.join(RULES)}")


def prototype_scores(features: torch.Tensor, prototype_features: torch.Tensor) -> torch.Tensor:
    """(B, D) image features, (K, C, D) features of each task's class prototypes -> (K, B)
    scores: the cosine similarity of the image to its nearest prototype of each task."""
    x = F.normalize(features, dim=-1)
    p = F.normalize(prototype_features, dim=-1)
    return torch.einsum("bd,kcd->kbc", x, p).amax(dim=-1)


def predict(logits: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, B, C) logits and (K, B) task scores -> (task, global class) per image, (B,) each; the
    global class of local class c of task k is k * C + c."""
    task = scores.argmax(dim=0)
    local = logits.argmax(dim=-1).gather(0, task[None]).squeeze(0)
    return task, task * logits.shape[-1] + local
