"""The pictures a run logs read at a glance: matrices cropped to the tasks run, tasks numbered from 1,
short titles, labelled prototype grids, forgetting curves; checked on the matplotlib objects and
on the saved files."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from pah_core import figures  # noqa: E402


def _matrix(done: int, width: int) -> np.ndarray:
    """A run of a ``width``-task stream after ``done`` tasks: row i known up to column i."""
    m = np.full((done, width), np.nan)
    for i in range(done):
        m[i, : i + 1] = 0.9 - 0.1 * np.arange(i + 1)[::-1] * 0.5
    return m


def _labels(ticks) -> list[str]:
    return [t.get_text() for t in ticks]


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_heatmap_is_cropped_to_the_tasks_run_and_numbers_them_from_1():
    # A 4-task run of a 10-task stream, 2 tasks done: 2 rows x 4 columns, not 2 x 10.
    fig = figures.accuracy_heatmap(_matrix(2, 10), 4, "task-IL accuracy (%), test")
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (2, 4)
    assert _labels(ax.get_xticklabels()) == ["1", "2", "3", "4"]
    assert _labels(ax.get_yticklabels()) == ["1", "2"]
    assert ax.get_xlabel() == "evaluated on task" and ax.get_ylabel() == "after training task"
    # The title is short and inside the figure (a long one was clipped).
    title = ax.title
    assert title.get_text() == "task-IL accuracy (%), test"
    box = title.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
    # Each known cell's percentage, and none for a task not evaluated yet.
    assert sorted(t.get_text() for t in ax.texts) == sorted(["90", "85", "90"])


def test_forgetting_curves_one_line_per_task_over_tasks_trained():
    m = np.array([[0.9, np.nan, np.nan], [0.7, 0.8, np.nan], [0.6, 0.75, 0.85]])
    fig = figures.forgetting_curves(m, 4)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["task 1", "task 2", "task 3"]
    assert list(lines[0].get_xdata()) == [1, 2, 3] and list(lines[0].get_ydata()) == [
        pytest.approx(90),
        pytest.approx(70),
        pytest.approx(60),
    ]
    assert list(lines[2].get_xdata()) == [3]
    assert _labels(ax.get_xticklabels()) == ["1", "2", "3", "4"]
    assert ax.get_xlabel() == "tasks trained" and ax.get_ylabel() == "test accuracy (%)"


def test_prototype_figure_labels_its_panels_and_tasks_and_keeps_the_pixels(tmp_path):
    rng = np.random.default_rng(0)
    tasks, classes, size = 2, 3, 5
    initial = rng.normal(size=(4, classes, 1, size, size))
    learned = initial + rng.normal(scale=0.5, size=initial.shape)
    grid = figures.prototype_grid(initial, learned, tasks, [0.5] * 3, [0.5] * 3)
    fig = figures.labelled_prototypes(grid, tasks, classes, size)
    words = {t.get_text() for t in fig.texts}
    assert {"as initialised", "as learned (after task 2)", "task 1", "task 2"} <= words
    path = tmp_path / "p.png"
    fig.savefig(path)  # as MLflow's log_figure saves it: no arguments
    saved = np.asarray(Image.open(path).convert("RGB"))
    h, w = grid.shape[:2]
    assert saved.shape == (
        figures.LABEL_TOP + h + figures.LABEL_BOTTOM,
        figures.LABEL_LEFT + w + figures.LABEL_RIGHT,
        3,
    )
    top, left = figures.LABEL_TOP, figures.LABEL_LEFT
    assert np.array_equal(saved[top : top + h, left : left + w], grid)  # the pixels, unresampled
