"""A non-editable install: the wheel carries every config file, and a job runs from another
folder with the installed copy, not the checkout. Offline: the wheel is built from a copy of the
sources with the project venv's setuptools (no build isolation, no downloads) and installed with
--no-deps into a folder put first on PYTHONPATH; its dependencies are the venv's."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, TINY, cli_env

pytestmark = pytest.mark.slow

PACKAGES = ("dedl_experiments", "multirun_launchers")
# Runs the job as `python -m dedl_experiments` would, after saying where the package came from.
RUN_JOB = ("import runpy, sys, dedl_experiments; print('imported from', dedl_experiments.__file__); "
           "sys.argv[0] = 'dedl_experiments'; runpy.run_module('dedl_experiments', run_name='__main__', alter_sys=True)")


def pip(*args: str, cwd: Path) -> None:
    env = cli_env(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_a_wheel_install_runs_a_job_from_another_folder(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in (*PACKAGES, "conf"):  # conf/: the configs, installed as dedl_experiments.conf
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheels"), str(source), cwd=tmp_path)
    [wheel] = (tmp_path / "wheels").glob("*.whl")

    configs = {path.relative_to(REPO).as_posix() for package in PACKAGES
               for path in (REPO / package).rglob("*.yaml")}
    assert configs and configs <= set(zipfile.ZipFile(wheel).namelist())

    site = tmp_path / "site"
    pip("install", "--no-deps", "--target", str(site), str(wheel), cwd=tmp_path)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    proc = subprocess.run([sys.executable, "-c", RUN_JOB, *TINY], cwd=cwd, env=cli_env(PYTHONPATH=str(site)),
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert f"imported from {site / 'dedl_experiments' / '__init__.py'}" in output
    assert "seg-unet-resnet18-app_none-cosine-random-smoke-s26: test IoU" in output
    assert (cwd / "mlflow.db").exists()
