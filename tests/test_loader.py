import torch

from pah_core.data import BatchLoader, Normalize, Split, random_crop, random_flip

CPU = torch.device("cpu")


def _split(n=50, size=8):
    x = (
        torch.arange(n * 3 * size * size, dtype=torch.int64)
        .remainder(251)
        .to(torch.uint8)
        .view(n, 3, size, size)
    )
    return Split(x=x, y=torch.arange(n) % 5)


def test_crop_without_padding_is_identity_and_with_padding_is_a_window():
    x = _split().x
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_crop(x, 0, g), x)
    out = random_crop(x, 2, g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):  # every output image is one 8x8 window of its padded input
        windows = [padded[i, :, a : a + 8, b : b + 8] for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_flip_flips_some_and_keeps_others():
    x = _split().x
    out = random_flip(x, torch.Generator().manual_seed(1))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(len(x))]
    kept = [torch.equal(out[i], x[i]) for i in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)


def test_normalize_matches_formula():
    x = _split().x
    n = Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), CPU)(x)
    ref = (x.float() / 255 - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.25, 0.3]
    ).view(1, 3, 1, 1)
    assert torch.allclose(n, ref, atol=1e-6)


def test_shuffled_epochs_are_deterministic_and_differ():
    from pah_core.data import Augment

    s = _split()
    norm = Normalize((0.5,) * 3, (0.5,) * 3, CPU)

    def epoch(e, seed=3):
        loader = BatchLoader(s, 16, norm, CPU, shuffle=True, augment=Augment(2, True), seed=seed)
        loader.set_epoch(e)
        return [(x.clone(), y.clone()) for x, y in loader]

    a, b, c = epoch(0), epoch(0), epoch(1)
    assert all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )
    assert not torch.equal(a[0][1], c[0][1])


def test_eval_shards_cover_every_image_once():
    s = _split(n=53)
    norm = Normalize((0.5,) * 3, (0.5,) * 3, CPU)
    ys = []
    for rank in range(3):
        ys += [
            y for _, y in BatchLoader(Split(s.x, torch.arange(53)), 10, norm, CPU, shard=(rank, 3))
        ]
    assert sorted(torch.cat(ys).tolist()) == list(range(53))


def test_train_shards_have_equal_length_and_no_overlap():
    s = Split(_split(n=53).x, torch.arange(53))
    norm = Normalize((0.5,) * 3, (0.5,) * 3, CPU)
    shards = [
        torch.cat([y for _, y in BatchLoader(s, 4, norm, CPU, shuffle=True, seed=1, shard=(r, 2))])
        for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == 26
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())


def test_last_batch_of_one_is_dropped_for_training_only():
    s = _split(n=33)
    norm = Normalize((0.5,) * 3, (0.5,) * 3, CPU)
    train = BatchLoader(s, 16, norm, CPU, shuffle=True, min_last_batch=2)
    assert [len(y) for _, y in train] == [16, 16] and len(train) == 2
    evaluation = BatchLoader(s, 16, norm, CPU)
    assert [len(y) for _, y in evaluation] == [16, 16, 1] and len(evaluation) == 3


def test_stream_keeps_only_the_current_tasks_training_data():
    """Old tasks' training images are let go (memory must not grow with tasks); their test splits
    stay for evaluation, and a task rebuilt later is the same task."""
    import gc
    import weakref

    from tests.helpers import tiny_config, tiny_stream

    stream = tiny_stream(tiny_config())
    first = stream.task(0)
    train_x, test0 = first.train.x.clone(), stream.test_split(0)
    gone = weakref.ref(first.train.x)
    del first
    stream.task(1)
    gc.collect()
    assert gone() is None
    assert stream.test_split(0) is test0
    assert torch.equal(stream.task(0).train.x, train_x)
