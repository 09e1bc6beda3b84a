"""reproduce on a real Dask cluster (dask.distributed): the same seeds give the same files, bit for bit,
as the local pool; the command line's --scheduler; a worker's error reaches the user unchanged.

Skipped without dask.distributed (pip install 'rws_ref[dask]').  With RWS_DASK_SCHEDULER set to an
address, the tests use that scheduler (.ci/run starts one with two workers); otherwise a LocalCluster
of two worker processes."""
import os

import pytest

distributed = pytest.importorskip("distributed")

from rws_ref import reproduce, runner  # noqa: E402
from rws_ref.cli import main  # noqa: E402

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
    for name in ("results.csv", "summary.json"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert sorted(os.listdir(tmp_path / "dask" / "runs")) == sorted(os.listdir(tmp_path / "local" / "runs"))
    assert not [f for f in os.listdir(tmp_path / "dask" / "runs") if f.endswith(".npz")]   # workers write nothing


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
