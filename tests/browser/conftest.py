"""Browser tests: the real ComfyUI frontend in Debian's headless Chromium, driven by playwright-core.

Needs ``bash scripts/install_browser.sh`` (Debian chromium + ``npm ci``) and ``bash scripts/install_comfyui.sh``.

* Missing chromium, node or ``node_modules/playwright-core``, or no ComfyUI install: every test here is skipped with
  the reason. ``VSSFLOW_REQUIRE_BROWSER=1`` (CI) turns that into a failure (``VSSFLOW_REQUIRE_COMFYUI=1`` does too
  for the ComfyUI part).
* ``comfy``: a server started with the integration harness (``integration/comfy_server.py``: same install checks,
  same ``ComfyServer``), but **module-scoped** and owned here. Re-exporting the session fixture of
  ``tests/integration/conftest.py`` would register a second, independent session fixture: two servers alive at
  once for the whole run, and that conftest's ``_session["server"]`` (used for its log tails) pointing at whichever
  started last. Module scope instead stops ours before ``tests/integration`` starts its own.
* Two frontends, one server each (the ``comfy`` fixture is parametrized, so every browser test runs twice):
  ``bundled``, the ``comfyui-frontend-package`` the pinned server installs (ComfyUI 0.30.0: 1.47), and ``newest``,
  the newest release on the registry that ``scripts/install_comfyui.sh`` unpacks to ``.comfyui/frontends/``, served
  with ``--front-end-root``. Each run covers the classic canvas and Vue nodes (``Comfy.VueNodes.Enabled``).
  ``VSSFLOW_BROWSER_FRONTENDS=bundled`` (or ``newest``) runs one of them.
* ``VSSFLOW_CHROMIUM``: the browser (default ``/usr/bin/chromium``). ``VSSFLOW_BROWSER_ARTIFACTS``: where the
  screenshots are copied, one folder per frontend (default ``tests/browser/artifacts/<frontend>``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from integration.comfy_server import (
    COMFY_HOME,
    ComfyServer,
    InstallMissing,
    InstallStale,
    ServerStartError,
    check_install,
)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
REQUIRE_ENV = "VSSFLOW_REQUIRE_BROWSER"
CHROMIUM = os.environ.get("VSSFLOW_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("VSSFLOW_BROWSER_ARTIFACTS", HERE / "artifacts"))
INSTALL_HINT = "run `bash scripts/install_browser.sh`"
FRONTENDS = [name.strip() for name in os.environ.get("VSSFLOW_BROWSER_FRONTENDS", "bundled,newest").split(",")
             if name.strip()]
_state: dict = {"shots": {}, "copied": {}}


def frontend_root(name: str) -> Path | None:
    """The folder served with --front-end-root for frontend ``name`` (None: the server's own)."""
    if name == "bundled":
        return None
    if name != "newest":
        raise ValueError(f"unknown frontend {name!r} in VSSFLOW_BROWSER_FRONTENDS (bundled, newest)")
    marker = COMFY_HOME / "frontends" / "newest"
    if not marker.is_file():
        raise FileNotFoundError(f"no newest frontend at {marker}; run `bash scripts/install_comfyui.sh`")
    root = COMFY_HOME / "frontends" / marker.read_text().strip() / "comfyui_frontend_package" / "static"
    if not (root / "index.html").is_file():
        raise FileNotFoundError(f"{root} holds no index.html; run `bash scripts/install_comfyui.sh`")
    return root


def frontend_version(name: str) -> str | None:
    """The version the frontend ``name`` should report (read from the install, not written here)."""
    if name == "newest":
        return (COMFY_HOME / "frontends" / "newest").read_text().strip()
    for dist in (COMFY_HOME / "venv" / "lib").glob("python*/site-packages/comfyui_frontend_package-*.dist-info"):
        return dist.name[len("comfyui_frontend_package-"):-len(".dist-info")]
    return None


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no chromium at {CHROMIUM} (set VSSFLOW_CHROMIUM, or {INSTALL_HINT})"
    if shutil.which("node") is None:
        return "no `node` on PATH (Node.js >= 20 is needed to drive the browser)"
    if not (REPO_ROOT / "node_modules" / "playwright-core" / "package.json").is_file():
        return f"node_modules/playwright-core is missing; {INSTALL_HINT}"
    return None


def comfy_problem() -> tuple[str, bool] | None:
    """(why ComfyUI cannot be started, whether that is a failure even without the REQUIRE switches), or None."""
    try:
        check_install()
    except InstallMissing as e:
        return str(e), False
    except InstallStale as e:
        return str(e), True
    return None


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if HERE in Path(str(item.path)).resolve().parents]
    if not mine or _required():
        return
    reason = browser_problem()
    if reason is None:
        problem = comfy_problem()
        if problem and not problem[1] and os.environ.get("VSSFLOW_REQUIRE_COMFYUI", "") != "1":
            reason = problem[0]
    if reason:
        marker = pytest.mark.skip(reason=f"{reason} (set {REQUIRE_ENV}=1 to make this a failure)")
        for item in mine:
            item.add_marker(marker)


@pytest.fixture(scope="module", params=FRONTENDS)
def frontend(request) -> str:
    """Which frontend this run of the browser tests drives: ``bundled`` or ``newest``."""
    return request.param


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, frontend):
    """A running real ComfyUI serving ``frontend`` (``integration.comfy_server.ComfyClient``), stopped by pid after
    the module's tests for that frontend."""
    problem = browser_problem()
    if problem is None:
        problem = (comfy_problem() or (None,))[0]
    extra = list(shlex.split(os.environ.get("VSSFLOW_COMFYUI_ARGS", "")))
    if problem is None:
        try:
            root = frontend_root(frontend)
        except (FileNotFoundError, ValueError) as e:
            problem = str(e)
        else:
            if root is not None:
                extra += ["--front-end-root", str(root)]
    if problem:
        pytest.fail(problem, pytrace=False)
    server = ComfyServer(tmp_path_factory.mktemp(f"comfyui-browser-{frontend}"), extra_args=tuple(extra))
    _state["server"] = server
    try:
        try:
            client = server.start()
        except ServerStartError as e:
            problem = str(e)
        if problem:
            pytest.fail(problem, pytrace=False)
        yield client
    finally:
        server.stop()


def run_driver(config_path: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(HERE / "ui_check.mjs"), str(config_path)], check=False, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def copy_artifacts(files: dict[str, str], frontend: str) -> dict[str, Path]:
    folder = ARTIFACTS / frontend
    if folder.is_dir():  # only this run's pictures
        for old in folder.glob("*.png"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    copied = {}
    for name, path in files.items():
        if Path(path).is_file():
            copied[name] = Path(shutil.copy2(path, folder / Path(path).name))
    return copied


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    driver = _state.get("driver")
    if driver is not None and driver.stderr:
        report.sections.append(("browser driver (stderr tail)", "\n".join(driver.stderr.splitlines()[-40:])))
    server = _state.get("server")
    if server is not None and "comfy" in getattr(item, "fixturenames", ()):
        report.sections.append(("ComfyUI log (tail)", server.log_tail(60)))


def pytest_terminal_summary(terminalreporter):
    for frontend, copied in _state["copied"].items():
        if copied:
            terminalreporter.write_line(f"browser screenshots ({frontend} frontend, {len(copied)}): "
                                        f"{Path(next(iter(copied.values()))).parent}")
