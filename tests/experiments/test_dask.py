"""reproduce on a real Dask cluster (dask.distributed): the same seeds give the same files, bit for bit,
as the local pool; the command line's --scheduler; a worker's error reaches the user unchanged.

Skipped without dask.distributed (pip install 'rws_ref[dask]').  With RWS_DASK_SCHEDULER set to an
address, the tests use that scheduler (.ci/run starts one with two workers); otherwise a LocalCluster
of two worker processes."""
import json
import os

import pytest

distributed = pytest.importorskip("distributed")

from rws_ref.cli import main  # noqa: E402
from rws_ref.experiments import bb2015_digits as digits  # noqa: E402
from rws_ref.experiments import le2019_gmm as reproduce  # noqa: E402
from rws_ref.experiments import runner  # noqa: E402

BUDGET = 2e-4                                   # 20 iterations per run


@pytest.fixture(scope="module")
def address():
    given = os.environ.get("RWS_DASK_SCHEDULER")
    if given:
        yield given
        return
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c.scheduler_address


def test_a_grid_on_dask_gives_the_local_pools_files_bit_for_bit(tmp_path, address):
    kw = dict(budget=BUDGET, seeds=2, methods=("WW", "WS"), ks=(2, 5))
    reproduce.le2019_gmm(tmp_path / "local", jobs=1, **kw)
    reproduce.le2019_gmm(tmp_path / "dask", scheduler=address, **kw)
    same_outputs(tmp_path / "local", tmp_path / "dask")


def same_outputs(local, dask):
    """Every number the same, bit for bit; only the runs' wall seconds differ."""
    assert (dask / "results.csv").read_bytes() == (local / "results.csv").read_bytes()
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in (local, dask)]
    seconds = [summary.pop("seconds_per_run") for summary in summaries]
    assert seconds[0].keys() == seconds[1].keys() == summaries[0]["final"].keys()
    assert summaries[0] == summaries[1]
    assert sorted(os.listdir(dask / "runs")) == sorted(os.listdir(local / "runs"))
    assert not [f for f in os.listdir(dask / "runs") if f.endswith(".npz")]                  # workers write nothing


def test_the_digits_experiment_runs_on_dask_with_the_same_numbers(tmp_path, address):
    pytest.importorskip("sklearn")
    kw = dict(budget=0.0005, methods=("RWS", "VIMCO"), ks=(5,))      # 10 iterations per run
    digits.bb2015_digits(tmp_path / "local", jobs=1, **kw)
    digits.bb2015_digits(tmp_path / "dask", scheduler=address, **kw)
    same_outputs(tmp_path / "local", tmp_path / "dask")
    assert (tmp_path / "dask" / "bb2015_digits_images.png").read_bytes()[:4] == b"\x89PNG"


def test_the_command_line_runs_the_grid_on_the_scheduler_and_resumes_it(tmp_path, address, capsys):
    args = ["reproduce", "le2019-gmm", "--budget", str(BUDGET), "--out", str(tmp_path / "cli"), "--scheduler",
            address, "--no-progress"]
    assert main(args) == 0
    before = (tmp_path / "cli" / "results.csv").read_bytes()
    os.unlink(tmp_path / "cli" / "runs" / "WS-K5-seed0.json")        # one run lost: only it runs again
    assert main(args) == 0
    assert (tmp_path / "cli" / "results.csv").read_bytes() == before
    assert "VIMCO" in capsys.readouterr().out


def test_a_workers_error_reaches_the_client_unchanged(address):
    def broken(task):
        raise ZeroDivisionError(f"the user's run {task} failed")
    with pytest.raises(ZeroDivisionError, match=r"the user's run 3 failed"):
        runner.map_runs(broken, [3], scheduler=address)
