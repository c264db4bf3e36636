"""Named settings a sweep flag chooses: the presets (--preset, per dataset) and the HPO protocols
(--hpo-protocol) with the config overrides each stands for."""

from __future__ import annotations

from typing import Any

# Presets: overrides on top of the dataset's shipped config, per dataset (the --dataset choices).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cifar100": {
        # Real CIFAR-100, minutes on 2 CPU cores: 4 of 10 tasks, 50 images per class, 1 epoch.
        "smoke": {
            "data.train_per_class": 50,
            "data.test_per_class": 20,
            "data.val_fraction": 0.1,
            "schedule.epochs_per_task": 1,
            "schedule.max_tasks": 4,
        },
        # `make demo`: about two minutes of search on 2 CPU cores, enough training per task that
        # fine-tuning visibly forgets and PAH does not: 4 of 10 tasks, 200 images per class (180
        # to train), a small CNN, 3 epochs of batch 32 (chance 10%); the fine-tune reference's
        # numbers are in docs/results/demo/finetune_reference.json.
        "demo": {
            "data.train_per_class": 200,
            "data.test_per_class": 50,
            "data.val_fraction": 0.1,
            "model.backbone": "small_cnn",
            "schedule.epochs_per_task": 3,
            "schedule.max_tasks": 4,
            "optim.batch_size": 32,
        },
        "paper": {},
    },
    "tinyimagenet": {
        "smoke": {
            "data.train_per_class": 20,
            "data.test_per_class": 10,
            "data.val_fraction": 0.1,
            "schedule.epochs_per_task": 1,
            "schedule.max_tasks": 3,
        },
        "demo": {
            "data.train_per_class": 100,
            "data.val_fraction": 0.1,
            "schedule.epochs_per_task": 3,
            "schedule.max_tasks": 3,
        },
        "paper": {},
    },
}
DEFAULT_SAMPLES = {"smoke": 4, "demo": 4, "paper": 64}


# How a search spends its trials (--hpo-protocol), each with its source.
HPO_PROTOCOLS = {
    "end_of_training": "each trial trains the whole stream (the usual end-of-training HPO)",
    "first_task": "trials train and validate on task 1 only; the choice then runs the whole stream "
    "(Lee, Hellan, Ericsson, Crowley & Storkey, 'Hyperparameter Selection in Continual Learning', "
    "arXiv 2404.06466, recommend it)",
    "first_k": "trials train and validate on the first --first-k tasks; the choice then runs on a "
    "stream of the other tasks, whose classes no trial saw (A-GEM, Chaudhry et al., ICLR 2019)",
    "first_k_reordered": "as first_k, and the choice's final runs see the other tasks' classes in "
    "another order (data.kept_order=random): tuned on one stream, evaluated on a disjoint one "
    "(protocol transfer across streams, as Cha & Cho, arXiv 2403.09066, across datasets)",
}
# Protocols whose final runs evaluate on another stream than the one the search tuned on: their
# sweeps are tagged with both streams (tune_stream, eval_stream) and the report groups them apart.
TRANSFER_PROTOCOLS = ("first_k_reordered",)


def protocol_overrides(protocol: str, k: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config overrides of a protocol's trials and of its final runs, on top of --set."""
    # Trials that stop before the stream's end never fill the full T x T matrix that forward
    # transfer needs: evaluating the tasks they never train (eval_future) would be time for nothing.
    if protocol == "first_task":
        return {"schedule.max_tasks": 1, "schedule.eval_future": False}, {}
    if protocol == "first_k":
        return {"schedule.max_tasks": k, "schedule.eval_future": False}, {"data.skip_tasks": k}
    if protocol == "first_k_reordered":
        trials, final = protocol_overrides("first_k", k)
        return trials, {**final, "data.kept_order": "random"}
    return {}, {}


def stream_tags(protocol: str, k: int, dataset: str, n_tasks: int, order_seed: int):
    """(search tags, final-sweep tags) naming the two streams of a transfer protocol; none
    for the others."""
    if protocol not in TRANSFER_PROTOCOLS:
        return {}, {}
    return (
        {"tune_stream": f"{dataset} tasks 1-{k}"},
        {
            "eval_stream": f"{dataset} tasks {k + 1}-{n_tasks}, classes reordered (seed {order_seed})"
        },
    )
