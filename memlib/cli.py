"""Command line: ``python -m memlib list``, ``python -m memlib run <claim> --profile P -p key=value
[--executor ray]``, ``python -m memlib sweep <claim> -p key=v1,v2 -p seed=0..4 [--executor ray]``,
``python -m memlib verify`` (check every stored result), ``python -m memlib export [claim] -o OUT`` and
``python -m memlib import BUNDLE`` (stored results as a bundle of plain files, see :mod:`memlib.bundle`)."""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from .config import PROFILES, ConfigError, default_profile, parse_overrides
from .device import SettingError, planned_threads
from .experiments import resolve
from .experiments import REGISTRY, find_claim, get_experiment, module_name
from .jsonio import MalformedJSON
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
    print(f"{'claim':28} {'cached (' + profile + ')':16} title")
    for nb, mod in REGISTRY.items():
        exp = get_experiment(mod)
        cfg = resolve(mod, profile)
        with warnings.catch_warnings(record=True) as caught:  # a bad entry: quarantined, shown as a miss
            warnings.simplefilter("always", StoreWarning)
            hit = store.get(exp.NAME, cfg.hashed_dict()) is not None
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        print(f"{nb:28} {'yes' if hit else 'no':16} {exp.TITLE}")
    print(f"\nresults store: {store.root}")
    return 0


def cmd_run(args) -> int:
    from .experiments import module_name

    nb_name = find_claim(args.claim)
    overrides = parse_overrides(args.param or [])
    cfg = resolve(module_name(nb_name), args.profile, overrides)  # validates everything before any work
    values = {k: cfg.values[k] for k in overrides}
    planned_threads()  # a bad $MEMLIB_THREADS fails here, not in the kernel
    src = _notebook_path(nb_name)
    out_dir = Path(args.output or (src.parent.parent / "runs"))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the folder for executed notebooks {out_dir} ({e.strerror or e}); choose "
                          "another with --output") from None
    out = out_dir / f"{nb_name}-{cfg.profile}-{cfg.key()}.ipynb"
    timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT[cfg.profile]
    store = Store()
    exp = get_experiment(cfg.experiment)
    try:
        store.check_writable()  # before any training: a read-only, mistyped or full store fails here
    except StoreError as e:  # a published, read-only store still serves what it holds
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StoreWarning)
            stored = store.get(exp.NAME, cfg.hashed_dict()) is not None
        if not stored:
            raise
        print(f"{str(e).split(';')[0]}; its stored result is used (nothing is trained)")
    _export_paths(store)
    # the notebook's kernel inherits the choice through the environment
    _share_ray_with_kernel(_apply_executor_args(args))
    print(f"running {nb_name} ({cfg.profile} profile), parameters: {values or 'profile defaults'}")
    if store.get(get_experiment(cfg.experiment).NAME, cfg.hashed_dict()) is not None:
        print("store hit: the result is in the results store, nothing trains")
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .kernel import held_kernel_log

    t0 = time.perf_counter()
    try:
        with held_kernel_log() as kernel_options:  # ipykernel's own log, shown after the run, shutdown noise dropped
            papermill.execute_notebook(str(src), str(out), parameters={"profile": cfg.profile, "overrides": values},
                                       cwd=str(src.parent), kernel_name=args.kernel, execution_timeout=timeout or None,
                                       **progress_options(args.quiet), **kernel_options)
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
    if store.get(exp.NAME, cfg.hashed_dict()) is None:  # the notebook just stored it, or saved it elsewhere
        where = store.located(exp.NAME, cfg.hashed_dict())
        saved = (f"it was saved in {where}: move that folder to {store.path(exp.NAME, cfg.hashed_dict())} to keep "
                 "it, then rerun for the verdict") if where else \
            "nor in a fallback folder (see the notebook's warnings)"
        print(f"error: the notebook ran but its result is not in the results store {store.root}; {saved}",
              file=sys.stderr)
        return 1
    from .staged import decide

    v = decide(cfg, store)[2]  # the seeds the notebook decided with (every part a store hit)
    print(f"verdict: {v.status_line()} ({v.stopping.text()}; analysis plan {v.plan_digest}). {v.summary}")
    print(how_to_view(out, render_html(out) if getattr(args, "html", False) else None))
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
    from .bundle import BundleError, imported, verify_bundle, verify_imported

    store = Store()
    if args.bundle:  # every check import runs, without importing
        bad = 0
        for path in args.bundle:
            try:
                checked = verify_bundle(path, store)
                print(f"good: {path} ({len(checked.staged)} result(s)); root hash {checked.root}")
            except BundleError as e:
                bad += 1
                print(f"bad: {e}")
        return 1 if bad else 0
    if not store.root.is_dir():
        why = "is not a folder" if os.path.lexists(store.root) else "does not exist"
        raise StoreError(f"results store {store.root} {why}: nothing to verify (set ${STORE_ENV} to the store's "
                         "folder)")
    entries = store.entries()
    bad = store.verify()
    stuck = 0
    for path, reason in bad:
        moved = ""
        if args.fix:
            try:
                moved = f" -> moved to {store.move_aside(path)}"
            except FileNotFoundError:
                moved = " -> gone already (moved by another process)"
            except OSError as e:
                stuck += 1
                moved = f" -> NOT moved ({e.strerror or e}); delete {path} by hand"
        print(f"bad: {reason}{moved}")
    print(f"{len(entries)} stored results checked in {store.root}: {len(entries) - len(bad)} good, {len(bad)} bad"
          + ("" if not bad or args.fix else " (run with --fix to move the bad ones aside)")
          + (f"; {stuck} could not be moved" if stuck else ""))
    bundles = imported(store)
    gone = verify_imported(store, fix=args.fix)
    for name, reason in gone:
        print(f"bad: imported bundle {name}: {reason}")
    if bundles:
        print(f"{len(bundles)} imported bundle(s) checked: {len(gone)} problem(s)"
              + (" (run with --fix to move the records that cannot be trusted aside)"
                 if any(r.get("problem") for r in bundles) and not args.fix else ""))
    return 1 if bad or gone else 0


def cmd_export(args) -> int:
    from .bundle import BundleError, export, root_hash, size_of, read_bundle
    from .evidence import selection

    store = Store()
    overrides = parse_overrides(args.param or [])
    if args.claim:
        chosen = [s for c in args.claim for s in selection(store, c, args.profile, overrides)]
    else:
        if args.profile or overrides:
            raise ConfigError("--profile and -p choose a claim's result: name the claim (e.g. export 01 --profile "
                              "paper -o OUT), or give neither to export every stored result")
        chosen = selection(store)
    try:
        out = export(store, chosen, args.output)
        root = root_hash(read_bundle(out)[0])  # read back from what was written
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in chosen:
        over = f", overrides {s['overrides']}" if s["overrides"] else ""
        print(f"exported {s['claim']} ({s['profile']} profile{over}): {s['kind']}/{s['key']}")
    print(f"bundle: {out} ({size_of(out):,} bytes, {len(chosen)} result(s)); import it with: "
          f"python -m memlib import {out}")
    print(f"root hash: {root} (publish it beside the bundle; import and verify --bundle print it for the reader "
          "to compare)")
    return 0


def cmd_import(args) -> int:
    from .bundle import BundleError, import_bundle

    store = Store()
    refused = 0
    for path in args.bundle:
        try:
            print(import_bundle(path, store).text())
        except BundleError as e:
            refused += 1
            print(f"refused: {e}; nothing imported from it", file=sys.stderr)
        except OSError as e:  # the store could not take it (full, read-only): what was installed stays verified
            refused += 1
            print(f"error: {path} could not be imported into {store.root} ({e.strerror or e}"
                  f"{': ' + str(e.filename) if e.filename else ''})", file=sys.stderr)
    print(f"results store: {store.root}")
    return 1 if refused else 0


# ----------------------------------------------------------------------------- executors and sweeps

def _add_executor_args(parser) -> None:
    from .executor import EXECUTORS

    g = parser.add_argument_group("where the parts run (see README: Sweeps on a cluster)")
    g.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="local (in this process, the default) or ray; default: $MEMLIB_EXECUTOR")
    g.add_argument("--address", default=None,
                   help="Ray cluster address (default: $RAY_ADDRESS, else a private local Ray instance)")
    g.add_argument("--cpus-per-part", type=float, default=None, help="Ray CPUs per part (default 1)")
    g.add_argument("--gpus-per-part", type=float, default=None,
                   help="Ray GPUs per part; fractions share a GPU (default 1 where the cluster has GPUs, else 0)")


def _apply_executor_args(args):
    """Pass --executor/--address/... on through the environment, which notebook kernels inherit; returns the
    executor (one given --address says so in its connection errors)."""
    from . import executor as ex

    for value, env in ((args.executor, ex.EXECUTOR_ENV), (args.address, ex.ADDRESS_ENV),
                       (args.cpus_per_part, ex.CPUS_ENV), (args.gpus_per_part, ex.GPUS_ENV)):
        if value is not None:
            os.environ[env] = str(value)
    if args.address and not args.executor:
        os.environ[ex.EXECUTOR_ENV] = "ray"
    return ex.get_executor(address=args.address)  # fails now, with a clear message, if e.g. Ray is not installed


def _share_ray_with_kernel(executor) -> None:
    if executor.name == "ray":
        print(f"ray cluster for the notebook's parts: {executor.share_with_children()}")


def _add_sweep_parser(sub) -> None:
    ps = sub.add_parser("sweep", help="run a claim's experiment over a grid of parameters (results to the store)")
    ps.add_argument("claim", help="e.g. 03, outlier, outlier_percentiles or 03_outlier_percentiles")
    ps.add_argument("--profile", choices=PROFILES, default=None, help="smoke | quick | paper (default: quick)")
    ps.add_argument("-p", "--param", action="append", metavar="KEY=V1,V2|A..B", default=[],
                    help="a grid axis: a comma list or an integer range a..b (inclusive); repeat for more axes")
    ps.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                    help="a fixed parameter, not split at commas (e.g. --set datasets=mnist,fashion-mnist)")
    ps.add_argument("--yes", action="store_true",
                    help="run a grid of more than 100 points without asking (above 1,000,000 it is refused)")
    _add_executor_args(ps)


def cmd_sweep(args) -> int:
    from .sweep import Grid, check_size, experiment_of, grid_points, resolve_grid, run_grid

    experiment = experiment_of(args.claim)
    planned_threads()  # a bad $MEMLIB_THREADS fails here, not in the first point
    points = grid_points(args.param, parse_overrides(args.set))  # lazy: its size is known before it is built
    ask = _ask if sys.stdin.isatty() else None
    if not check_size(len(points), args.yes, ask):
        print("nothing was run", file=sys.stderr)
        return 1
    executor = _apply_executor_args(args)
    parallel = executor.name != "local" and len(points) > 1
    if parallel and "progress" not in points[0]:  # one line per finished point instead of interleaved bars
        points = Grid(list(zip(points.keys, points.values)), {**points.fixed, "progress": "false"})
    grid = resolve_grid(experiment, args.profile, points)  # every point validated before anything runs
    if hasattr(executor, "connect"):
        executor.connect()  # a cluster that cannot be joined fails here, once, not once per point
    store = Store()
    print(f"sweep {experiment} ({grid[0][1].profile} profile): {len(grid)} point(s), executor {executor.name}, "
          f"results store {store.root}")
    axes = [a.split("=", 1)[0].strip() for a in args.param]

    def report(o) -> None:
        label = ", ".join(f"{k}={o.cfg.values[k]}" for k in axes) or "profile defaults"
        if o.error:
            print(f"FAILED  {label}: {o.error}", flush=True)
        else:
            where = o.path or "NOT stored (see the warning above)"
            print(f"{'cached' if o.cached else 'done':7} {label}: {where} ({o.seconds:.0f} s)", flush=True)

    outcomes = run_grid(grid, store, executor, parallel, report)
    failed = [o for o in outcomes if o.error]
    for o in failed:  # listed together at the end, one line each (the first line of each error)
        label = ", ".join(f"{k}={o.cfg.values[k]}" for k in axes) or "profile defaults"
        print(f"failed: {label}: {o.error.splitlines()[0]}", file=sys.stderr)
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} point(s) stored"
          + (f"; {len(failed)} failed (rerun the same command to retry only what is missing)" if failed else ""))
    return 1 if failed else 0


def _add_map_parser(sub) -> None:
    pm = sub.add_parser("map", help="a claim's verdict over its analysis plan's map grid (noise rate x width), each "
                                    "cell a full verdict; optionally exported as one bundle")
    pm.add_argument("claim", help="e.g. 02, dropout or 02_dropout_comparison")
    pm.add_argument("--profile", choices=PROFILES, default=None, help="the grid's base profile (default: the plan's)")
    pm.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                    help="a parameter fixed in every cell (not one of the grid's knobs)")
    pm.add_argument("--dry-run", action="store_true", help="list the cells, their seeds and estimated cost, and stop")
    pm.add_argument("--export", metavar="OUT", default=None,
                    help="write the decided map as a result bundle (e.g. results/map-02-quick-cpu)")
    pm.add_argument("--parallel", type=int, default=None, metavar="N",
                    help="cells decided at a time (default: 1 with the local executor, 2 with Ray)")
    _add_executor_args(pm)


def cmd_map(args) -> int:
    import os

    from . import verdict_map as vm

    vm.plan_map(args.claim)  # a claim without a map fails here
    store = Store()
    fixed = parse_overrides(args.param or [])
    planned_threads()
    # Before the cells are keyed: the executor sets the parts' thread count, which results are stored under.
    executor = _apply_executor_args(args)
    text = vm.dry_run_text(args.claim, args.profile, store, os.cpu_count() or 1, fixed)  # every cell validated
    if args.dry_run:
        print(text)
        return 0
    if args.export and Path(args.export).exists():
        raise ConfigError(f"{args.export} already exists: choose another path for the map's bundle or delete it")
    parallel = args.parallel or (2 if executor.name == "ray" else 1)
    print(text)
    rows = vm.run_map(args.claim, args.profile, store, executor, parallel=parallel, overrides=fixed)
    cols = [c for c in rows.columns if c not in ("reason", "plan", "text", "unit", "threshold", "shows")]
    print(rows[cols].to_string(index=False))
    print(f"decided {len(rows)} cells in {rows.attrs['seconds']:.0f} s")
    if args.export:
        from .bundle import BundleError, read_bundle, root_hash

        try:
            out = vm.export_map(args.claim, rows, args.export, args.profile, store, fixed)
        except BundleError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"map bundle: {out}; root hash {root_hash(read_bundle(out)[0])}")
    return 0


def _add_calibrate_parser(sub) -> None:
    pc = sub.add_parser("calibrate", help="run a claim's calibration sweep (preconditions and cost only) and write "
                                          "its record under calibration/")
    pc.add_argument("claim", help="e.g. 02, dropout or 02_dropout_comparison")
    pc.add_argument("--dry-run", action="store_true", help="list the runs (settings x calibration seeds) and stop")
    pc.add_argument("--no-write", action="store_true", help="print the record's pick without writing the record")
    _add_executor_args(pc)


def cmd_calibrate(args) -> int:
    from . import calibration as cal
    from .sweep import experiment_of

    experiment = experiment_of(args.claim)
    plan = cal.plan_of(experiment)
    runs = cal.configs(experiment, plan)  # every run validated before anything trains
    print(f"calibrate {experiment}: {len(plan.settings())} setting(s) x {plan.seeds} calibration seed(s) = "
          f"{len(runs)} run(s) on the {plan.base} profile; knobs: "
          + "; ".join(f"{k} in {list(v)}" for k, v in plan.grid.items()))
    if args.dry_run:
        for point, _ in runs:
            print(f"  {point}")
        return 0
    record = cal.calibrate(experiment, Store(), _apply_executor_args(args), plan)
    knobs = list(plan.grid)
    for r in record["rows"]:
        pre = " ".join(f"{p['name']}={r[p['name']]}{'' if r[p['name'] + '_ok'] else '(x)'}"
                       for p in record["preconditions"])
        print("  " + ", ".join(f"{k}={r[k]}" for k in knobs) + f", seed {r['seed']}: {pre}; {r['seconds']} s")
    print(f"rule: {record['rule']}")
    print(f"pick: {record['pick'] or 'none: no setting met every precondition in every calibration seed'}")
    if not args.no_write:
        try:
            print(f"record: {cal.write(record)}")
        except OSError as e:
            where = f" {e.filename}" if e.filename else ""
            print(f"error: the calibration record{where} could not be written ({e.strerror or e}); "
                  "the sweep's results stay in the results store, so rerunning the command writes it without "
                  "training", file=sys.stderr)
            return 1
    return 0


def _add_plan_parser(sub) -> None:
    pa = sub.add_parser("plan", help="a claim's analysis plan (criteria, preconditions, calibration, seed rule) as "
                                     "JSON, its digest and its amendment log")
    pa.add_argument("claim", help="e.g. 02, dropout or 02_dropout_comparison")
    pa.add_argument("--amend", metavar="REASON", help="append the declared plan to its log as a new dated version")


def cmd_plan(args) -> int:
    import json

    from .plan import amend, versions
    from .plans import plan_of
    from .sweep import experiment_of

    plan = plan_of(experiment_of(args.claim))
    if args.amend is not None:
        try:
            entry = amend(plan, args.amend)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"{plan.claim}: version {entry['version']} ({entry['date']}), digest {entry['digest']}")
        return 0
    log = versions(plan)
    state = ("the log's last version" if log and log[-1]["digest"] == plan.digest() else
             "NOT in its log: amend it (python -m memlib plan NN --amend REASON) before running verdicts with it")
    print(json.dumps({"claim": plan.claim, "digest": plan.digest(), "plan": plan.canonical(),
                      "versions": [{k: v for k, v in e.items() if k != "plan"} for e in log]}, indent=1))
    print(f"digest {plan.digest()}: {state}", file=sys.stderr)
    return 0


def _ask(question: str) -> str:
    try:
        return input(question)
    except EOFError:  # Ctrl-D: no
        return ""


# Ergonomics: short claim names, a claim's parameters, progress during a run, how to view its result ------------
def param_rows(nb_name: str) -> list[dict]:
    """Each parameter of a claim: name, group (data, model, training, run or the experiment's own), type, value per
    profile, allowed values or range, help (with the unit)."""
    from .config import PROFILES as NAMES
    from .config import group_of

    exp = get_experiment(module_name(nb_name))
    rows = []
    for prm in exp.PARAMS:
        if prm.choices:
            allowed = " | ".join(map(str, prm.choices))
        elif prm.check is not None:
            allowed = getattr(prm.check, "range", "checked")
        else:
            allowed = "true | false" if prm.type is bool else "any"
        row = {"parameter": prm.name, "group": group_of(prm.name),
               "type": prm.type.__name__ + (" or None" if prm.nullable else "")}
        row.update({p: _text(exp.PROFILES[p].get(prm.name)) for p in NAMES})
        row.update(allowed=allowed, help=prm.help + (f" [{prm.unit}]" if prm.unit else ""))
        rows.append(row)
    return rows


def _text(v) -> str:
    return "-" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def cmd_params(args) -> int:
    nb_name = find_claim(args.claim)
    rows = param_rows(nb_name)
    cols = list(rows[0])
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols[:-1]}
    print(f"{nb_name}: parameters (override with: python -m memlib run {nb_name.split('_', 1)[0]} -p key=value)\n")
    print("  ".join(c.ljust(width.get(c, 0)) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(width.get(c, 0)) for c in cols))
    return 0


def progress_options(quiet: bool) -> dict:
    """papermill options: stream the kernel's output (memlib's per-epoch progress bars go to stderr) to this
    terminal while a cell runs, instead of papermill's per-cell bar that stands still for the whole training."""
    if quiet:
        return {"progress_bar": False}
    return {"progress_bar": False, "log_output": False, "stdout_file": sys.stdout, "stderr_file": sys.stderr}


def render_html(executed: Path) -> Path:
    """Render an executed notebook as one HTML page with the book's configuration (its glued values resolve, its
    verdict box and tables render as in the book), without executing it again; returns the page."""
    import subprocess

    import yaml

    root = project_root(Path(__file__).parent) or project_root()
    book_cfg = yaml.safe_load((root / "_config.yml").read_text())
    sphinx_cfg = dict(book_cfg.get("sphinx", {}).get("config", {}))
    sphinx_cfg.pop("nb_execution_raise_on_error", None)
    cfg = {"title": executed.stem, "only_build_toc_files": False, "execute": {"execute_notebooks": "off"},
           "parse": book_cfg.get("parse", {}), "bibtex_bibfiles": [str(root / "book" / "references.bib")],
           "sphinx": {"config": sphinx_cfg}}
    out_dir = executed.with_suffix("")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = out_dir / "_config.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(executed), "--config", str(cfg_path),
           "--path-output", str(out_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    page = out_dir / "_build" / "_page" / executed.stem / "html" / "index.html"
    if done.returncode != 0 or not page.exists():
        raise ConfigError(f"rendering {executed} as HTML failed ({' '.join(cmd)}):\n{done.stdout[-2000:]}"
                          f"{done.stderr[-2000:]}")
    return page


def how_to_view(executed: Path, page: Path | None = None) -> str:
    if page is not None:
        return f"view it: open {page} in a browser (rendered with the book's configuration)"
    return (f"view it: rerun with --html to render it as one page with the book's configuration (glued values "
            f"filled in), or open {executed} in Jupyter (its glued values show as {{glue}} placeholders there)")


_warnings_format = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, StoreWarning):
        print(f"warning: {message}", file=file or sys.stderr)
    else:
        _warnings_format(message, category, filename, lineno, file, line)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m memlib", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("list", help="claims and whether a result is cached")
    pl.add_argument("--profile", choices=PROFILES)
    pr = sub.add_parser("run", help="execute a claim's notebook through papermill and store its result")
    pr.add_argument("claim", help="e.g. 01, gradient or 01_gradient_similarity")
    pr.add_argument("--profile", choices=PROFILES, default=None, help="smoke | quick | paper (default: quick)")
    pr.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override a parameter")
    pr.add_argument("--output", help="folder for executed notebooks (default: runs/)")
    pr.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    pr.add_argument("--quiet", action="store_true", help="no progress output while the notebook runs")
    pr.add_argument("--html", action="store_true", help="also render the executed notebook as one HTML page")
    pr.add_argument("--timeout", type=int, default=None, metavar="SECONDS",
                    help="seconds one notebook cell may run; 0 = no limit (default: smoke 900, quick 3600, "
                         "paper no limit)")
    pp = sub.add_parser("params", help="a claim's parameters: type, value per profile, allowed values")
    pp.add_argument("claim", help="e.g. 01, gradient or 01_gradient_similarity")
    pv = sub.add_parser("verify", help="check every stored result against its manifest, and the results of every "
                        "imported bundle; report the bad ones")
    pv.add_argument("--fix", action="store_true", help="move bad entries to <store>/.quarantine/")
    pv.add_argument("--bundle", action="append", metavar="PATH", help="check this bundle instead, without importing")
    pe = sub.add_parser("export", help="write stored results as one bundle of plain files (memlib import reads it)")
    pe.add_argument("claim", nargs="*", help="claims to export (default: every stored result of every claim)")
    pe.add_argument("--profile", choices=PROFILES, default=None, help="the claims' profile (default: quick)")
    pe.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="an override of the run to export")
    pe.add_argument("-o", "--output", required=True, help="the bundle to write: a folder, or a file ending in .tar")
    pi = sub.add_parser("import", help="verify result bundles completely, then add their results to the store")
    pi.add_argument("bundle", nargs="+", help="a bundle folder or .tar written by memlib export")
    _add_executor_args(pr)
    _add_sweep_parser(sub)
    _add_calibrate_parser(sub)
    _add_map_parser(sub)
    _add_plan_parser(sub)
    args = p.parse_args(argv)
    try:
        with warnings.catch_warnings():  # a store's warning is one line of its own, not warnings' two-line format
            warnings.showwarning = _show_warning
            return {"list": cmd_list, "run": cmd_run, "params": cmd_params, "sweep": cmd_sweep,
                    "calibrate": cmd_calibrate, "map": cmd_map, "plan": cmd_plan, "verify": cmd_verify,
                    "export": cmd_export, "import": cmd_import}[args.cmd](args)
    except (ConfigError, StoreError, SettingError, MalformedJSON) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished parts are kept in the results store; rerun to continue", file=sys.stderr)
        return 130
