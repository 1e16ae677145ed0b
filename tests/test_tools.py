"""tools/get_browser.sh, the first step of ``make test``: Chromium is there, or installed, or ``make test`` fails in
its first seconds with one line saying what to install (before it builds anything).  Each case runs the script
with a PATH made of a few real tools and fakes (no real apt-get is ever called)."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "get_browser.sh"
REAL = ["bash", "env", "cat", "rm", "mktemp", "tail", "sed", "chmod"]


def _bin(tmp_path, root=True, **fakes):
    b = tmp_path / "bin"
    b.mkdir()
    for tool in REAL:
        os.symlink(shutil.which(tool), b / tool)
    (b / "id").write_text(f"#!{shutil.which('bash')}\necho {0 if root else 1000}\n")
    for name, body in fakes.items():
        (b / name.replace("_", "-")).write_text(f"#!{shutil.which('bash')}\n{body}\n")
    for f in b.iterdir():
        if not f.is_symlink():
            f.chmod(0o755)
    return b


def _run(b, **env):
    t0 = time.perf_counter()
    done = subprocess.run([str(SCRIPT)], env={"PATH": str(b), "HOME": "/nonexistent", **env}, capture_output=True,
                          text=True, timeout=60)
    return done, time.perf_counter() - t0


def test_without_chromium_and_no_way_to_install_it_fails_at_once_with_one_line(tmp_path):
    done, seconds = _run(_bin(tmp_path, root=False))
    assert done.returncode == 1 and seconds < 10
    assert done.stderr.strip().splitlines() == [
        "error: make test needs Chromium and chromedriver for its browser check: install them (Debian/Ubuntu, as "
        "root: apt-get install chromium chromium-driver), or run 'make unit' for the tests that need no browser"]


def test_installed_chromium_is_found_silently(tmp_path):
    done, _ = _run(_bin(tmp_path, chromium="exit 0", chromedriver="exit 0"))
    assert done.returncode == 0 and done.stdout == done.stderr == ""


def test_root_on_debian_installs_chromium_waiting_for_the_apt_lock(tmp_path):
    log = tmp_path / "apt.log"
    b = tmp_path / "bin"
    apt = (f'echo "$@" >> {log}\n'
           f'if [[ "$*" == *install* ]]; then printf "#!/bin/sh\\n" > {b}/chromium; '
           f'printf "#!/bin/sh\\n" > {b}/chromedriver; chmod +x {b}/chromium {b}/chromedriver; fi')
    done, _ = _run(_bin(tmp_path, apt_get=apt))
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and all("DPkg::Lock::Timeout=600" in c for c in calls)
    assert calls[1].endswith("install -y -qq chromium chromium-driver")
    assert "Chromium installed" in done.stdout


def test_a_failing_apt_get_is_shown_then_the_one_line(tmp_path):
    done, _ = _run(_bin(tmp_path, apt_get='echo "E: Unable to locate package chromium-driver" >&2; exit 100'))
    assert done.returncode == 1
    err = done.stderr.strip().splitlines()
    assert "  apt: E: Unable to locate package chromium-driver" in err
    assert err[-1].startswith("error: make test needs Chromium and chromedriver")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_stops_at_the_browser_step_before_building_anything(tmp_path):
    b = _bin(tmp_path, root=False)
    os.symlink(shutil.which("make"), b / "make")
    os.symlink(shutil.which("sh"), b / "sh")
    venv = tmp_path / "venv"
    t0 = time.perf_counter()
    done = subprocess.run(["make", "-C", str(ROOT), "test", f"VENV={venv}"], env={"PATH": str(b)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and time.perf_counter() - t0 < 20
    assert "error: make test needs Chromium" in done.stderr and not venv.exists()
