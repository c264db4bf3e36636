import math

import numpy as np
import pytest

from pah_core import metrics

NAN = math.nan
# Hand-made 3-task matrix: row i = after training task i.
A = [
    [0.90, NAN, NAN],
    [0.80, 0.70, NAN],
    [0.60, 0.75, 0.50],
]


def test_accuracy_matrix_from_counts():
    m = metrics.accuracy_matrix([[9, 0], [8, 7]], [[10, 0], [10, 10]])
    assert m[0, 0] == 0.9 and math.isnan(m[0, 1]) and m[1, 1] == 0.7


def test_average_accuracy():
    assert metrics.average_accuracy(A) == pytest.approx((0.60 + 0.75 + 0.50) / 3)
    assert metrics.average_accuracy(A, after=0) == pytest.approx(0.90)
    assert metrics.average_accuracy(A, after=1) == pytest.approx(0.75)


def test_forgetting_is_max_based_and_excludes_last_task():
    # task 0: max(0.90, 0.80) - 0.60 = 0.30; task 1: max(0.70) - 0.75 = -0.05
    assert metrics.forgetting(A) == pytest.approx((0.30 - 0.05) / 2)
    assert metrics.forgetting(A, after=1) == pytest.approx(0.10)
    assert metrics.forgetting(A, after=0) == 0.0


def test_bwt_lopez_paz():
    # (0.60 - 0.90 + 0.75 - 0.70) / 2
    assert metrics.bwt(A) == pytest.approx(-0.125)


def test_official_code_bwt_uses_only_the_last_step():
    # (0.60 - 0.80 + 0.75 - 0.70) / 2
    assert metrics.official_code_bwt(A) == pytest.approx(-0.075)


def test_running_curves_and_summary():
    assert metrics.running(metrics.average_accuracy, A) == pytest.approx([0.90, 0.75, 0.6166666])
    s = metrics.summary(A)
    assert s["forgetting_curve"] == pytest.approx([0.0, 0.10, 0.125])
    assert s["avg_acc"] == pytest.approx(metrics.average_accuracy(A))


def test_no_forgetting_when_nothing_changes():
    m = np.tril(np.full((4, 4), 0.8)) + np.triu(np.full((4, 4), np.nan), 1)
    assert metrics.forgetting(m) == 0.0 and metrics.bwt(m) == 0.0


def test_missing_entry_is_an_error_not_a_number():
    with pytest.raises(ValueError, match="NaN"):
        metrics.summary([[0.5, NAN], [NAN, 0.4]])
