"""The shape of the code, checked: layers import only downward (import-linter), ruff's rules
(complexity included) pass, the libraries load without what they do not need."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# the layers whose functions must stay short: the tracker library, the wire, the stage
# workers and the service
SHORT_FUNCTION_FOLDERS = ("tracker", "wire", "workers", "pipeline")
MAX_FUNCTION_LINES = 50


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable}: install the test extras (pip install -e '.[test]')")
    return str(path)


def test_import_contracts_are_kept():
    """Layers, independence of detector and tracker, serving apart from training (pyproject.toml)."""
    proc = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_ruff_passes():
    proc = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_no_long_functions_in_the_service_layers():
    long = []
    for folder in SHORT_FUNCTION_FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _import_in_a_fresh_interpreter(modules: list[str]) -> dict:
    code = (
        "import json, os, sys\n"
        "before = dict(os.environ)\n"
        f"for m in {modules!r}: __import__(m)\n"
        "after = dict(os.environ)\n"
        "changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'env_changed': changed}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_tracker_loads_neither_tensorflow_nor_opencv():
    result = _import_in_a_fresh_interpreter(["tracker"])
    heavy = [m for m in result["modules"] if m.split(".")[0] in ("tensorflow", "keras", "cv2", "zmq", "detector")]
    assert heavy == []
    assert result["env_changed"] == []


def test_serving_detector_does_not_import_training_code():
    result = _import_in_a_fresh_interpreter(
        ["detector.runtime", "detector.appearance", "detector.embedder", "detector.darknet", "workers.detector_worker"])
    training = [m for m in result["modules"] if m.startswith("detector.training") or m.split(".")[0] == "pycocotools"]
    assert training == []


def _layout_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def test_readme_layout_names_every_module_and_nothing_else():
    """The README's Layout section matches the tree: every module of the layers is named there
    (as ``folder/`` then its file names), and every name there exists."""
    import re

    block = _layout_block()
    packages = re.findall(r"^(\w+)/\s", block, flags=re.M)
    assert packages == ["vidtrack", "pipeline", "workers", "wire", "detector", "tracker", "base", "bench"]
    named = set(re.findall(r"([\w/.]+\.(?:py|json))", block))
    missing, stale = [], []
    for package in packages[:-1]:
        body = block.split(f"\n{package}/", 1)[1] if not block.startswith(package) else block[len(package) + 1:]
        body = re.split(r"\n\w+/\s", body, maxsplit=1)[0]
        names = set(re.findall(r"([\w/.]+\.(?:py|json))", body))
        subfolders = set(re.findall(r"\b(\w+)/(?=[\s)])", body))
        for path in (REPO / package).rglob("*"):
            rel = path.relative_to(REPO / package)
            if path.suffix not in (".py", ".json") or path.name == "__init__.py" or "__pycache__" in rel.parts:
                continue
            if rel.parts[0] in subfolders and len(rel.parts) > 1:
                continue  # a subpackage named as a whole ("darknet/", "commands/", "training/")
            if str(rel) not in names:
                missing.append(f"{package}/{rel}")
        for name in names:
            if not (REPO / package / name).exists():
                stale.append(f"{package}/{name}")
    assert not missing, f"modules the README's Layout does not name: {missing}"
    assert not stale, f"names in the README's Layout that are not in the tree: {stale}"
    assert named
