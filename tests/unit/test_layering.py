"""The dependency rules of the layout.

The service never loads torch; the worker imports only the contract at the service's root,
never the gateway; that contract imports no web framework; `model` stays pure, and its
deployable core (`model/*.py`) imports nothing of its workshop (data, training, evaluation,
command front ends).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_MODEL = {"redis", "rq", "fastapi", "starlette", "uvicorn", "service", "worker"}
# what only the gateway may import: the worker and the shared contract stay free of them
WEB_FRAMEWORKS = {"fastapi", "starlette", "uvicorn"}


def _modules_loaded_by(script: str) -> set[str]:
    """Run `script` in a fresh interpreter; return the names in its `sys.modules` at exit."""
    code = script + "\nimport sys\nsys.stderr.write('\\n'.join(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(result.stderr.split())


def _module_name(path: Path) -> str:
    """`service/gateway/routes/jobs.py` -> `service.gateway.routes.jobs` (a package: its name)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path) -> set[str]:
    """Dotted names `path` imports (`import a.b`, `from a.b import c`; the latter also counts as
    `a.b.c`, so `from model import data` is `model.data`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_service_package_never_imports_torch() -> None:
    names = sorted(_module_name(path) for path in (ROOT / "service").rglob("*.py"))
    assert "service.gateway.routes.jobs" in names
    loaded = _modules_loaded_by("\n".join(f"import {name}" for name in names))
    assert "torch" not in loaded


def test_worker_imports_only_the_contract_at_the_service_root() -> None:
    offences = [
        f"{path.relative_to(ROOT)}: imports {name}"
        for path in sorted((ROOT / "worker").rglob("*.py"))
        for name in _imported_modules(path)
        if name.startswith("service.gateway") or name.split(".")[0] in WEB_FRAMEWORKS
    ]
    assert offences == []


def test_contract_never_imports_the_gateway_or_a_web_framework() -> None:
    contract = [
        path for path in sorted((ROOT / "service").glob("*.py")) if not path.stem.endswith("_cli")
    ]
    offences = [
        f"{path.name}: imports {name}"
        for path in contract
        for name in _imported_modules(path)
        if name.startswith("service.gateway") or name.split(".")[0] in WEB_FRAMEWORKS
    ]
    assert offences == []


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
