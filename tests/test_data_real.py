"""The real datasets from $PAH_DATA_ROOT (see ../shared/data/README.md)."""

import pytest

from pah_core.data import DataError, load_cifar100


def test_missing_data_offline_names_root_and_fix(tmp_path):
    with pytest.raises(DataError) as e:
        load_cifar100(tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path) in msg and "PAH_DATA_ROOT" in msg and "data.download" in msg


def test_failed_download_names_url_and_fix(tmp_path):
    # A closed port on this machine: the download machinery runs for real and fails at once.
    url = "http://127.0.0.1:9/cifar-100-python.tar.gz"
    with pytest.raises(DataError) as e:
        load_cifar100(tmp_path, download=True, url=url)
    msg = str(e.value)
    assert url in msg and str(tmp_path) in msg and "PAH_DATA_ROOT" in msg
