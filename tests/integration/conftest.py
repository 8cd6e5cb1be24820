"""Integration tests against a real ComfyUI server, installed by ``bash scripts/install_comfyui.sh`` into ``.comfyui/``.

* No install: every test in this folder is skipped, with the reason, so ``pytest tests`` passes on a dev machine.
  With ``VSSFLOW_REQUIRE_COMFYUI=1`` (CI) a missing install fails them instead.
* An install that does not match this checkout (pack link elsewhere, requirements.txt changed, last install
  failed half way): they fail, with what to run.
* ``comfy`` (session): one server for the whole session, ``python main.py --cpu`` on a free loopback port, with
  its folders and its log under a pytest tmp dir and ``HF_HUB_OFFLINE=1``; stopped by pid at the end. Its
  ``models/vssflow`` (through ``--extra-model-paths-config``) holds tiny random VSSFlow components under ``tiny/``
  (``tests/tiny_models.py``); ``tiny_models`` gives their dropdown names.
  Extra server arguments: ``VSSFLOW_COMFYUI_ARGS="--verbose DEBUG"``. Start timeout: ``VSSFLOW_COMFYUI_STARTUP_TIMEOUT``.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from tiny_models import build_tiny_models_folder

from .comfy_server import ComfyClient, ComfyServer, InstallMissing, InstallStale, ServerStartError, check_install

HERE = Path(__file__).resolve().parent

REQUIRE_ENV = "VSSFLOW_REQUIRE_COMFYUI"
_session: dict = {}


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if HERE in Path(str(item.path)).resolve().parents]
    if not mine or _required():
        return
    try:
        check_install()
    except InstallMissing as e:
        marker = pytest.mark.skip(reason=f"{e} (set {REQUIRE_ENV}=1 to make this a failure)")
        for item in mine:
            item.add_marker(marker)
    except InstallStale:
        pass  # the fixture fails with the message


@pytest.fixture(scope="session")
def comfy(tmp_path_factory) -> ComfyClient:
    """A client for a running real ComfyUI server (see ``comfy_server.ComfyClient``)."""
    problem = None
    try:
        check_install()
    except (InstallMissing, InstallStale) as e:
        problem = str(e)
    if problem:  # failed outside the except block, so the report shows the message and no exception chain
        pytest.fail(problem, pytrace=False)
    workdir = tmp_path_factory.mktemp("comfyui")
    models = workdir / "models" / "vssflow"
    _session["tiny_models"] = build_tiny_models_folder(models)
    server = ComfyServer(workdir, model_folders={"vssflow": models},
                         extra_args=tuple(shlex.split(os.environ.get("VSSFLOW_COMFYUI_ARGS", ""))))
    _session["server"] = server
    try:
        try:
            client = server.start()
        except ServerStartError as e:
            problem = str(e)
        if problem:
            pytest.fail(problem, pytrace=False)
        yield client
    finally:
        server.stop()  # by pid: terminate, then kill; a no-op when it never started


@pytest.fixture(scope="session")
def tiny_models(comfy) -> dict[str, str]:
    """Dropdown names of the tiny components in the server's models/vssflow (keys as ``tiny_models.TINY_FILES``)."""
    return dict(_session["tiny_models"])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    server = _session.get("server")
    if report.failed and server is not None and "comfy" in getattr(item, "fixturenames", ()):
        report.sections.append(("ComfyUI log (tail)", server.log_tail(80)))


def pytest_terminal_summary(terminalreporter):
    server = _session.get("server")
    if server is not None:
        ready = f"ready in {server.startup_seconds:.1f} s" if server.startup_seconds is not None else "never ready"
        terminalreporter.write_line(f"ComfyUI server: {ready}; log {server.log_path}")
