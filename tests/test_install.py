"""vidtrack as a new user gets it: the wheel built from this checkout, installed (not
editable) into a fresh virtual environment and run from a folder outside the repo, each
command in a new process.

Offline and quick: the wheel goes in with ``--no-deps`` and the fresh environment sees this
environment's third-party packages through a plain path line in a ``.pth`` file (a path line
does not run that folder's own ``.pth`` files, so the editable install of the repo stays off).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO_ROOT, require

pytestmark = pytest.mark.install

PACKAGES = ("vidtrack", "pipeline", "workers", "wire", "detector", "tracker", "base")
DARKNET_CASES = {  # name: cfg, weights (None = random, of this size in bytes), names
    "yolov3-tiny": ("darknet/yolov3-tiny.cfg", 35_434_956, "darknet/coco.names"),
    "yolov4-tiny": ("darknet/yolov4-tiny.cfg", 24_251_276, "darknet/coco.names"),
    "yolo-fastest-1.1-body": ("yolo-fastest/yolo-fastest-1.1_body/yolo-fastest-1.1_body.cfg",
                              "yolo-fastest/yolo-fastest-1.1_body/yolo-fastest-1.1_body.weights",
                              "yolo-fastest/yolo-fastest-1.1_body/body.names"),
}

# run by the fresh environment's python: everything vidtrack imports and reads is its own copy
WHERE_FROM = r"""
import json, sys
from pathlib import Path

import base.paths, wire.events
PACKAGES = sys.argv[2].split(",")
files = {name: __import__(name).__file__ for name in PACKAGES}
files.update(DEFAULT_DETECTOR=base.paths.DEFAULT_DETECTOR, DEFAULT_EMBEDDER=base.paths.DEFAULT_EMBEDDER,
             EVENT_SCHEMA_PATH=wire.events.EVENT_SCHEMA_PATH)
prefix, repo = Path(sys.prefix).resolve(), Path(sys.argv[1]).resolve()
assert prefix != Path(sys.base_prefix).resolve(), "not run in a virtual environment"
outside = {k: str(v) for k, v in files.items() if prefix not in Path(v).resolve().parents}
assert not outside, f"not from the fresh environment {prefix}: {outside}"
missing = [k for k, v in files.items() if not Path(v).is_file()]
assert not missing, f"missing: {missing}"
assert not any(p and Path(p).resolve() == repo for p in sys.path), f"{repo} is on sys.path"
print(json.dumps({k: str(v) for k, v in files.items()}))
"""


@dataclass
class Installed:
    python: Path
    bin: Path
    work: Path  # the current folder of every command: outside the repo
    env: dict
    wheel: Path

    def run(self, *args, timeout: float = 120.0) -> subprocess.CompletedProcess:
        """Run ``args`` (a command of the fresh environment's bin/) and insist on exit code 0."""
        proc = subprocess.run([str(self.bin / args[0]), *map(str, args[1:])], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc


def _build_wheel(out: Path) -> Path:
    """Build the wheel from a copy of the files it is made of (a stale build/ folder in the
    checkout could otherwise put removed modules in it)."""
    src = out / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, src / name)
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", "-q", "-w", str(out / "dist"), str(src)],
                   check=True, capture_output=True, timeout=120)
    (wheel,) = (out / "dist").glob("vidtrack-*.whl")
    return wheel


def _fresh_venv(root: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=60)
    python = root / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--disable-pip-version-check", "-q", str(wheel)], check=True, capture_output=True, timeout=120)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "vidtrack-test-deps.pth").write_text("".join(f"{path}\n" for path in deps))
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("install")
    wheel = _build_wheel(root)
    python = _fresh_venv(root / "venv", wheel)
    work = root / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}", VIDTRACK_MODELS=str(root / "pulled"),
               TF_CPP_MIN_LOG_LEVEL="2")
    return Installed(python, python.parent, work, env, wheel)


def test_wheel_holds_the_package_data(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    shipped = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "base" / "models").glob("*.keras")}
    assert {"base/models/detector-synthetic.keras", "base/models/embedder.keras"} <= shipped
    assert shipped <= names
    assert "wire/events.schema.json" in names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_code_and_models_come_from_the_fresh_environment(installed):
    proc = installed.run("python", "-c", WHERE_FROM, REPO_ROOT, ",".join(PACKAGES))
    files = json.loads(proc.stdout)
    assert set(files) >= set(PACKAGES) | {"DEFAULT_DETECTOR", "DEFAULT_EMBEDDER"}
    assert shutil.which("vidtrack", path=installed.env["PATH"]) == str(installed.bin / "vidtrack")


def test_demo(installed):
    proc = installed.run("vidtrack", "demo", "-o", "demo", "--frames", "40", "--no-video", "--show-events", "2")
    assert "HOTA" in proc.stdout, proc.stdout
    mot = installed.work / "demo" / "demo.mot.txt"
    assert len(mot.read_text().splitlines()) > 40  # several people tracked over 40 frames


@pytest.fixture(scope="module")
def imported(installed, shared_data):
    """``vidtrack import-darknet`` of a DARKNET_CASES entry (once each); returns the .keras path."""
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            cfg, weights, names = DARKNET_CASES[name]
            cfg, names = require(shared_data / cfg), require(shared_data / names)
            if isinstance(weights, int):
                weights = _random_weights(installed.work / f"{name}.weights", cfg, size=weights)
            else:
                weights = require(shared_data / weights)
            out = installed.work / "models" / f"{name}.keras"
            proc = installed.run("vidtrack", "import-darknet", cfg, weights, "--names", names, "-o", out)
            assert f"wrote {out}" in proc.stdout
            done[name] = out
        return done[name]

    return get


def _random_weights(path: Path, cfg: Path, size: int) -> Path:
    from detector.darknet import plan_file, write_random_weights

    assert write_random_weights(path, plan_file(cfg), seed=0) == size == path.stat().st_size
    return path


@pytest.mark.parametrize("name", list(DARKNET_CASES))
def test_import_darknet_then_detect(installed, imported, shared_data, name):
    model = imported(name)
    image = require(shared_data / "darknet" / "images" / "person.jpg")
    proc = installed.run("vidtrack", "detect", image, "--model", model, "--json")
    detections = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(detections, list)
    if name == "yolo-fastest-1.1-body":  # real weights: the person in the picture is found
        assert any(d["class_name"] == "body" and d["score"] > 0.5 for d in detections), detections


def test_track_with_an_imported_model(installed, imported, shared_data):
    video = require(shared_data / "videos" / "TUD-Campus.mp4")
    model = imported("yolov4-tiny")  # the model whose ChannelGroup layers a new process could not load
    proc = installed.run("vidtrack", "track", video, "--model", model, "-o", "track", "--max-frames", "8",
                         "--no-video", "--no-progress")
    assert re.search(r"TUD-Campus: 8(/\d+)? frames tracked", proc.stdout), proc.stdout
    out = installed.work / "track"
    assert (out / "TUD-Campus.mot.txt").is_file()
    events = [json.loads(line) for line in (out / "TUD-Campus.events.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "stream.ended"
