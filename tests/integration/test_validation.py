"""Sweeps select on validation data, never on test (issue #13 point 1): every task boundary also
evaluates the seen tasks' validation splits, and what a sweep optimises is computed from them."""


def test_a_search_whose_validation_split_rounds_to_nothing_is_refused(tmp_path, capsys, data_root):
    from pah_sweep.search import main

    code = main(
        "cifar100",
        [
            "--set",
            "data.train_per_class=5",  # 4 left after the prototype: 10% of 4 rounds to 0
            "--storage",
            str(tmp_path / "ray"),
            "--mlflow-uri",
            str(tmp_path / "mlflow.db"),
            "--data-root",
            str(data_root),
        ],
    )
    assert code == 2 and not (tmp_path / "ray").exists()
    assert "rounds to none" in capsys.readouterr().err
