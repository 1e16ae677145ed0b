"""Build the book (``jupyter-book build`` with the given arguments), running experiment parts on the executor that
``$MEMLIB_EXECUTOR`` names, after importing the result bundles committed in ``results/`` (:mod:`memlib.bundle`).

With ``ray``, one private local Ray instance is started here and shared with every notebook kernel (through
``$MEMLIB_RAY_ADDRESS``), parts run one per core as single-threaded processes (``$MEMLIB_THREADS=1``: independent
parts side by side beat one two-threaded process on a 2-core machine and do not oversubscribe it), and the
instance stops when the build ends.  With ``local`` (or Ray not installed), parts run in each kernel in turn.

    .venv/bin/python tools/build_book.py . --all --keep-going
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


RESULTS = Path(__file__).resolve().parents[1] / "results"


def import_results(folder: Path = RESULTS) -> None:
    """Import every result bundle committed in ``results/`` into the results store (verified first; a refused
    bundle is reported and left out, the build goes on), so that the pages show them without training."""
    from memlib.bundle import BundleError, import_folder

    for outcome in import_folder(folder):
        text = f"refused: {outcome}" if isinstance(outcome, BundleError) else outcome.text()
        print(f"book: result bundle {text}", file=sys.stderr if isinstance(outcome, BundleError) else sys.stdout,
              flush=True)


def main(args: list[str]) -> int:
    import_results()
    executor = os.environ.get("MEMLIB_EXECUTOR", "local")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            print("book: Ray is not installed; parts run locally (pip install -e '.[ray]')", file=sys.stderr)
            os.environ["MEMLIB_EXECUTOR"] = "local"
        else:
            from memlib.executor import RayExecutor

            try:
                address = RayExecutor().share_with_children()
            except Exception as e:  # noqa: BLE001 - Ray could not start here: build anyway, parts in turn
                print(f"book: Ray did not start ({type(e).__name__}: {e}); parts run locally", file=sys.stderr)
                os.environ["MEMLIB_EXECUTOR"] = "local"
                os.environ.pop("MEMLIB_THREADS", None)
            else:
                print(f"book: experiment parts run on a local Ray instance at {address}", flush=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    return subprocess.call([str(jb), "build", *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
