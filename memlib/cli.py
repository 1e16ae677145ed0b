"""Command line: ``python -m memlib list`` and ``python -m memlib run <claim> --profile P -p key=value``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .config import PROFILES, ConfigError, default_profile, parse_overrides, resolve
from .experiments import REGISTRY, get_experiment, is_implemented
from .store import Store, project_root


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
        hit = store.get(exp.NAME, cfg.hashed_dict()) is not None
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
    print(f"running {nb_name} ({cfg.profile} profile), parameters: {values or 'profile defaults'}")
    import papermill

    t0 = time.perf_counter()
    papermill.execute_notebook(str(src), str(out), parameters={"profile": cfg.profile, "overrides": values},
                               cwd=str(src.parent), progress_bar=not args.quiet, kernel_name=args.kernel)
    print(f"done in {time.perf_counter() - t0:.0f} s; executed notebook: {out}")
    result = get_experiment(cfg.experiment).run(cfg, Store())  # a store hit: the notebook just ran it
    from .claims import get_claim

    v = get_claim(get_experiment(cfg.experiment).NAME).check(result, cfg)
    print(f"verdict: {v.status}. {v.summary}")
    return 0


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
    args = p.parse_args(argv)
    try:
        return cmd_list(args) if args.cmd == "list" else cmd_run(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished parts are kept in the results store; rerun to continue", file=sys.stderr)
        return 130
