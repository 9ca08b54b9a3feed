"""The service as an operator sees it: processes that name themselves, SIGTERM that stops
cleanly, exit codes that say what happened, CURVE secret keys that only their owner reads."""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from base.paths import DEFAULT_DETECTOR
from pipeline.service import _child, process_title
from vidtrack.commands.demo import free_tcp_port
from vidtrack.synthetic import SceneConfig, write_scene
from pipeline.channels import Reports
from wire import frame_ring
from wire.transport import generate_keys

REPO = Path(__file__).resolve().parents[1]
needs_model = pytest.mark.skipif(not DEFAULT_DETECTOR.exists(), reason=f"shipped model missing: {DEFAULT_DETECTOR}")


def report_own_title(spec, stop, report_queue) -> None:
    """A stage body for the test: say what the process is called."""
    report_queue.put({"title": Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode()})


@pytest.mark.parametrize("name, title", [("grabber-cam1", "vidtrack: grabber cam1"),
                                         ("detector-0", "vidtrack: detector-0"), ("tracker", "vidtrack: tracker")])
def test_every_child_process_names_itself(name, title):
    assert process_title(name) == title
    ctx = mp.get_context("spawn")
    reports = Reports(ctx)
    pipe, writer = reports.new_pipe()
    proc = ctx.Process(target=_child, args=(report_own_title, (None, None), pipe, False), name=name)
    proc.start()
    writer.close()
    seen, deadline = [], time.monotonic() + 60
    while len(seen) < 2 and time.monotonic() < deadline:  # the CPUs it runs on, then the title
        mp.connection.wait(reports.handles(), 0.1)
        seen += reports.drain()
    proc.join(10)
    assert proc.exitcode == 0
    assert {"title": title} in seen


def test_curve_secret_keys_are_readable_by_their_owner_only(tmp_path):
    keys = generate_keys(tmp_path / "keys")
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    secrets = sorted(keys.glob("*.key_secret"))
    assert [p.name for p in secrets] == ["client.key_secret", "server.key_secret", "subscriber.key_secret"]
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def _write_config(path: Path, sources: list[tuple[str, str]], out: Path) -> Path:
    lines = [f'[[sources]]\nurl = "{url}"\nid = "{sid}"\n' for url, sid in sources]
    lines.append(f'[events]\nendpoint = "tcp://127.0.0.1:{free_tcp_port()}"\n')
    lines.append(f'[output]\ndir = "{out}"\nprogress = false\n')
    path.write_text("\n".join(lines))
    return path


def _vidtrack(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "vidtrack", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _temp_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("vt-*")}


@needs_model
def test_sigterm_stops_the_service_cleanly(tmp_path):
    scene = write_scene(tmp_path / "scene", SceneConfig(num_frames=1500, width=320, height=180, seed=7))
    config = _write_config(tmp_path / "run.toml", [(str(scene / "video.mp4"), "long")], tmp_path / "out")
    folders_before = _temp_folders()
    proc = _vidtrack("run", str(config))
    mot = tmp_path / "out" / "long.mot.txt"
    deadline = time.monotonic() + 120
    while not (mot.exists() and mot.stat().st_size > 0) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the tracker has written its first rows: every stage is up
    assert proc.poll() is None, "the run ended before it could be stopped: " + proc.stdout.read()
    children = _children_of(proc.pid)
    assert len(children) >= 3  # grabber, detector, tracker (and multiprocessing's helper)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "stopped by SIGTERM" in output
    # multiprocessing's resource tracker leaves on its own once the supervisor's pipe closes
    grace = time.monotonic() + 5
    while [pid for pid in children if _alive(pid)] and time.monotonic() < grace:
        time.sleep(0.1)
    assert [(pid, _cmdline(pid)) for pid in children if _alive(pid)] == []
    assert _temp_folders() - folders_before == set()
    if frame_ring.available():
        assert [e for e in os.listdir(frame_ring.SHM_DIR) if e.startswith(f"vidtrack-{proc.pid}-")] == []
    rows = mot.read_text().splitlines()
    assert 0 < len({r.split(",")[0] for r in rows}) < 1500  # stopped early, with what it had tracked


@needs_model
def test_exit_code_is_one_when_a_stream_failed(tmp_path):
    scene = write_scene(tmp_path / "scene", SceneConfig(num_frames=20, width=320, height=180, seed=8))
    config = _write_config(tmp_path / "run.toml", [(str(scene / "video.mp4"), "good"),
                                                   (str(tmp_path / "missing.mp4"), "missing")], tmp_path / "out")
    proc = _vidtrack("run", str(config))
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1, output
    assert "missing" in output and "not found" in output
    assert (tmp_path / "out" / "good.mot.txt").read_text()  # the good stream went on


def test_exit_code_is_two_for_a_bad_config(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[[sources]]\nurl = "x.mp4"\n[detector]\nbatch_size = 0\n')
    proc = _vidtrack("run", str(config))
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, output
    assert "detector.batch_size" in output
