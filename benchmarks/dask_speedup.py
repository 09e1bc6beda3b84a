"""The speed-up of two Dask workers over one on reproduce's grid (a real dask.distributed cluster of
worker processes on this machine), and that both give the local pool's numbers bit for bit.

Run:  python benchmarks/dask_speedup.py [--budget 0.005] [--seeds 2]   (needs pip install 'rws_ref[dask]')

The grid is le2019-gmm's WW and WS at K = 5 and 10 for each seed (4 runs per seed); each cluster
gets the same grid in a fresh folder.  Prints the wall times and their ratio.
"""
import argparse
import pathlib
import sys
import tempfile
import time

from rws_ref.experiments import le2019_gmm as reproduce


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=0.005, help="fraction of 100,000 iterations per run")
    parser.add_argument("--seeds", type=int, default=2, help="seeds (4 runs each)")
    args = parser.parse_args(argv)
    try:
        from distributed import LocalCluster
    except ImportError:
        sys.exit("dask_speedup.py needs dask.distributed: pip install 'rws_ref[dask]'")
    grid = dict(budget=args.budget, seeds=args.seeds, methods=("WW", "WS"), ks=(5, 10))
    times, files = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            print(f"{workers} worker(s) ...", file=sys.stderr, flush=True)
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                out = pathlib.Path(tmp) / f"w{workers}"
                start = time.perf_counter()
                reproduce.le2019_gmm(out, scheduler=cluster.scheduler_address, **grid)
                times[workers] = time.perf_counter() - start
                files[workers] = (out / "results.csv").read_bytes()
        print("local pool ...", file=sys.stderr, flush=True)
        reproduce.le2019_gmm(pathlib.Path(tmp) / "local", jobs=2, **grid)
        local = (pathlib.Path(tmp) / "local" / "results.csv").read_bytes()
    runs = 4 * args.seeds
    print(f"{runs} runs of {max(10, round(args.budget * reproduce.FULL_ITERS)):,} iterations: "
          f"1 worker {times[1]:.1f} s, 2 workers {times[2]:.1f} s, speed-up {times[1] / times[2]:.2f}×; "
          f"results bit-identical to the local pool: {files[1] == files[2] == local}")


if __name__ == "__main__":
    main()
