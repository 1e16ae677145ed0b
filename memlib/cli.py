"""Command line: ``python -m memlib list``, ``python -m memlib run <claim> --profile P -p key=value`` and
``python -m memlib verify`` (check every stored result)."""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from .config import PROFILES, ConfigError, default_profile, parse_overrides, resolve
from .experiments import REGISTRY, get_experiment, is_implemented
from .store import STORE_ENV, Store, StoreError, StoreWarning, absolute, project_root

# Seconds one notebook cell may run (papermill's execution_timeout), per profile; 0 = no limit (a paper-scale
# training cell may run for hours on a CPU).  --timeout overrides it.
DEFAULT_TIMEOUT = {"smoke": 900, "quick": 3600, "paper": 0}


def _notebook_path(name: str) -> Path:
    root = project_root() or project_root(Path(__file__).parent)
    if root is None:
        raise SystemExit("cannot find the project's notebooks/ folder: run this from inside the memlib checkout")
    return root / "notebooks" / f"{name}.ipynb"


def cmd_list(args) -> int:
    store = Store()
    profile = args.profile or default_profile()
    print(f"{'claim':28} {'implemented':12} {'cached (' + profile + ')':16} title")
    for nb, mod in REGISTRY.items():
        if not is_implemented(mod):
            print(f"{nb:28} {'no':12} {'-':16}")
            continue
        exp = get_experiment(mod)
        cfg = resolve(mod, profile)
        with warnings.catch_warnings(record=True) as caught:  # a bad entry: quarantined, shown as a miss
            warnings.simplefilter("always", StoreWarning)
            hit = store.get(exp.NAME, cfg.hashed_dict()) is not None
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        print(f"{nb:28} {'yes':12} {'yes' if hit else 'no':16} {exp.TITLE}")
    print(f"\nresults store: {store.root}")
    return 0


def cmd_run(args) -> int:
    from .experiments import module_name

    name = args.claim
    nb_name = next((k for k, v in REGISTRY.items() if name in (k, v)), None)
    if nb_name is None:
        raise ConfigError(f"unknown claim {name!r}; choose one of: {', '.join(REGISTRY)}")
    overrides = parse_overrides(args.param or [])
    cfg = resolve(module_name(name), args.profile, overrides)  # validates everything before any work
    values = {k: cfg.values[k] for k in overrides}
    src = _notebook_path(nb_name)
    out_dir = Path(args.output or (src.parent.parent / "runs"))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{nb_name}-{cfg.profile}-{cfg.key()}.ipynb"
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT[cfg.profile]
    store = Store()
    store.check_writable()  # before any training: a read-only, mistyped or full store fails here
    _export_paths(store)
    print(f"running {nb_name} ({cfg.profile} profile), parameters: {values or 'profile defaults'}")
    import papermill
    from papermill.exceptions import PapermillExecutionError

    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(src), str(out), parameters={"profile": cfg.profile, "overrides": values},
                                   cwd=str(src.parent), progress_bar=not args.quiet, kernel_name=args.kernel,
                                   execution_timeout=timeout or None)
    except PapermillExecutionError as e:
        if e.ename == "KeyboardInterrupt":
            raise KeyboardInterrupt from None
        print(f"error: {nb_name} failed: {e.ename}: {_last_line(e.evalue)}\n(executed notebook: {out})",
              file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a cell timeout, a dead kernel: one line, not a traceback
        if type(e).__name__ in ("CellTimeoutError", "TimeoutError"):
            msg = f"a cell ran longer than the timeout of {timeout} s (--timeout SECONDS; 0 = no limit)"
        else:
            msg = f"{type(e).__name__}: {_last_line(str(e))}"
        print(f"error: {nb_name} did not finish: {msg}\n(executed notebook: {out})", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - t0:.0f} s; executed notebook: {out}")
    exp = get_experiment(cfg.experiment)
    result = store.get(exp.NAME, cfg.hashed_dict())  # the notebook just stored it
    if result is None:
        print(f"error: the notebook ran but its result is not in the results store {store.root} (was it written "
              "to a fallback folder? see the notebook's warnings)", file=sys.stderr)
        return 1
    from .claims import get_claim

    v = get_claim(exp.NAME).check(result, cfg)
    print(f"verdict: {v.status}. {v.summary}")
    return 0


def _last_line(text: str) -> str:
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _export_paths(store: Store) -> None:
    """Pass absolute store and data folders to the notebook kernel, which runs in notebooks/."""
    from .data import DATA_ENV

    os.environ[STORE_ENV] = str(store.root)
    if os.environ.get(DATA_ENV):
        os.environ[DATA_ENV] = str(absolute(os.environ[DATA_ENV]))


def cmd_verify(args) -> int:
    store = Store()
    entries = store.entries()
    bad = store.verify(fix=args.fix)
    for path, reason in bad:
        print(f"bad: {reason}" + (" -> moved to .quarantine/" if args.fix else ""))
    print(f"{len(entries)} stored results checked in {store.root}: {len(entries) - len(bad)} good, {len(bad)} bad"
          + ("" if not bad or args.fix else " (run with --fix to move the bad ones aside)"))
    return 1 if bad else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m memlib", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("list", help="claims and whether a result is cached")
    pl.add_argument("--profile", choices=PROFILES)
    pr = sub.add_parser("run", help="execute a claim's notebook through papermill and store its result")
    pr.add_argument("claim", help="e.g. 01_gradient_similarity")
    pr.add_argument("--profile", choices=PROFILES, default=None, help="smoke | quick | paper (default: quick)")
    pr.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override a parameter")
    pr.add_argument("--output", help="folder for executed notebooks (default: runs/)")
    pr.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    pr.add_argument("--quiet", action="store_true", help="no papermill progress bar")
    pr.add_argument("--timeout", type=int, default=None, metavar="SECONDS",
                    help="seconds one notebook cell may run; 0 = no limit (default: smoke 900, quick 3600, "
                         "paper no limit)")
    pv = sub.add_parser("verify", help="check every stored result against its manifest; report the bad ones")
    pv.add_argument("--fix", action="store_true", help="move bad entries to <store>/.quarantine/")
    args = p.parse_args(argv)
    commands = {"list": cmd_list, "run": cmd_run, "verify": cmd_verify}
    try:
        return commands[args.cmd](args)
    except (ConfigError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished parts are kept in the results store; rerun to continue", file=sys.stderr)
        return 130
