"""octoDNS's own validator accepts the example zone files, and rejects what it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from portfolio import copy_example

from pipeline.cli import main

VALIDATE = Path(sys.executable).parent / "octodns-validate"


def validate(repo: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    result = CliRunner().invoke(main, ["--repo", str(repo), "octodns-config"])
    assert result.exit_code == 0, result.output
    config = tmp_path / "octodns.yaml"
    config.write_text(result.stdout)
    return subprocess.run(
        [str(VALIDATE), "--config-file", str(config)], capture_output=True, text=True, check=False
    )


def test_octodns_validate_accepts_the_example_zone_files(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    done = validate(repo, tmp_path)
    assert done.returncode == 0, done.stderr
    # It validated every zone: each appears in the config it read.
    config = (tmp_path / "octodns.yaml").read_text()
    for zone in ("fabrikam.example.", "contoso-retail.example.", "northwind-health.example."):
        assert zone in config


def test_octodns_validate_rejects_an_unescaped_semicolon(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    zone = repo / "zones/fabrikam-labs/fabrikam.example.yaml"
    zone.write_text(zone.read_text().replace("p=quarantine\\;", "p=quarantine;"))
    done = validate(repo, tmp_path)
    assert done.returncode != 0
    assert "fabrikam.example" in done.stdout + done.stderr
