"""The package layering of docs/architecture.md holds: lint-imports keeps the contract in
pyproject.toml, the contract names every package, and the doc's layer table is the contract's.

A package imports only the layers below it, so there is no import cycle between packages and a
newcomer can read the code bottom-up. import-linter (through grimp) reads every import statement,
also one inside a function: moving an import into a function does not get round the contract.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _contract() -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["id"] == "layers"]
    return dict(layers)


def _layers() -> list[str]:
    layers = _contract()["layers"]
    assert isinstance(layers, list)
    return [str(layer) for layer in layers]


def _lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", "pyproject.toml"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_keeps_the_layers_contract() -> None:
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 kept, 0 broken" in run.stdout


def test_every_package_has_a_layer() -> None:
    # A new package or top-level module outside the contract could import anything: name it in
    # pyproject.toml [tool.importlinter] and in the table of docs/architecture.md.
    named = {name.strip() for layer in _layers() for name in layer.split("|")}
    children = grimp.build_graph("pipeline", cache_dir=None).find_children("pipeline")
    assert children - named == set(), "packages with no layer"
    assert named - children == set(), "layers naming no package"


def test_the_doc_table_is_the_contract() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"^\| *[0-9]+ *\|", line)]
    from_doc = [
        " | ".join(f"pipeline.{name}" for name in re.findall(r"`([a-z_]+)`", row.split("|")[2]))
        for row in rows
    ]
    assert from_doc == _layers()


def test_the_contract_ignores_no_import() -> None:
    # An exception to the layers would be a cycle kept on purpose: there is none, and one is
    # not slipped in through the config alone.
    assert "ignore_imports" not in _contract()


def _module_cycles(package: str = "pipeline") -> list[set[str]]:
    """The strongly connected groups of more than one module (Tarjan, iteratively). An import
    under `if TYPE_CHECKING:` runs only for mypy (an annotation's type), so it is no cycle."""
    graph = grimp.build_graph(package, cache_dir=None, exclude_type_checking_imports=True)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & set(modules)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in modules:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def test_no_module_imports_itself_back() -> None:
    # Inside a package the layers do not apply, but a cycle between modules (two modules each
    # importing the other, one of them inside a function) is a seam in the wrong place. The last
    # one (files.py reading policy/settings.yaml's limits through yamlfile.py, which reads through
    # files.py) ended when the YAML parse of text moved to yamltext.py, below both.
    assert _module_cycles() == []


def test_the_cycle_finder_finds_a_function_level_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check above must be able to fail: a imports b at the top, b imports a inside a
    # function (as gate.identity did gate.approvals, until the keys moved to identity.py).
    package = tmp_path / "cyclic_example"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic_example import b\n")
    (package / "b.py").write_text("def late() -> None:\n    from cyclic_example import a\n")
    (package / "c.py").write_text("from cyclic_example import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _module_cycles("cyclic_example") == [{"cyclic_example.a", "cyclic_example.b"}]


def test_a_function_level_import_up_the_layers_breaks_the_contract(tmp_path: Path) -> None:
    # A copy of the package whose lowest module imports the CLI inside a function: the import
    # runs only when called, yet the layering is broken and lint-imports must say so.
    shutil.copytree(
        ROOT / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("*.pyc")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    safe = tmp_path / "pipeline" / "text" / "safe.py"
    safe.write_text(
        safe.read_text() + "\n\ndef _late() -> None:\n    from pipeline.cli import main  # noqa\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    run = _lint(tmp_path, env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "pipeline.text is not allowed to import pipeline.cli" in run.stdout
    assert "pipeline.text.safe -> pipeline.cli" in run.stdout
