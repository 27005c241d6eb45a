"""The dependency rules of the layout: the gateway never loads torch; `model` stays pure; the
model's deployable core (`model/*.py`) imports nothing of its workshop (data, training,
evaluation, command front ends)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_MODEL = {"redis", "rq", "fastapi", "starlette", "uvicorn", "service", "worker"}


def _modules_loaded_by(script: str) -> set[str]:
    """Run `script` in a fresh interpreter; return the names in its `sys.modules` at exit."""
    code = script + "\nimport sys\nsys.stderr.write('\\n'.join(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(result.stderr.split())


def test_gateway_package_never_imports_torch() -> None:
    service_dir = ROOT / "service"
    names = sorted("service." + path.stem for path in service_dir.glob("*.py"))
    names += sorted(
        "service.routes." + path.stem for path in (ROOT / "service" / "routes").glob("*.py")
    )
    loaded = _modules_loaded_by("\n".join(f"import {name}" for name in ["service", *names]))
    assert "torch" not in loaded


def test_cli_help_never_imports_torch() -> None:
    script = (
        "from swintormer.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert "torch" not in _modules_loaded_by(script)


def _model_sources() -> list[Path]:
    return sorted((ROOT / "model").rglob("*.py"))


def test_model_never_imports_services_or_reads_environment() -> None:
    offences: list[str] = []
    for path in _model_sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                roots = set()
            offences += [f"{path.name}: imports {name}" for name in roots & FORBIDDEN_IN_MODEL]
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"environ", "getenv"}
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                offences.append(f"{path.name}:{node.lineno}: reads os.{node.attr}")
    assert offences == []


WORKSHOP = ("model.data", "model.training", "model.evaluation", "model.cli")


def _imported_modules(path: Path) -> set[str]:
    """Dotted names `path` imports (`from model import data` counts as `model.data`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_deployable_core_imports_nothing_of_the_workshop() -> None:
    core = sorted((ROOT / "model").glob("*.py"))
    assert {"config.py", "swintormer.py", "prior.py", "restorer.py"} <= {p.name for p in core}
    offences = [
        f"{path.name}: imports {name}"
        for path in core
        for name in sorted(_imported_modules(path))
        if any(name == room or name.startswith(room + ".") for room in WORKSHOP)
    ]
    assert offences == []
