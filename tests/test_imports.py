"""The command line starts without the heavy libraries: `dmarcops --help` and every command's start
import only click and a few small modules of ours; octoDNS, dnspython, jsonschema, boto3 and
cryptography are imported by the command that uses them (pipeline/cli.py, LAZY_COMMANDS).

A regression test, not a timing test: each check runs in a fresh interpreter and reads its
sys.modules, so an import that creeps back into the start-up path fails here by name.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings

import click
import pytest
from click.testing import CliRunner

from pipeline.cli import LAZY_COMMANDS, LazyCommands, LazyGroup, main

HEAVY = (
    "octodns",
    "octodns_bind",
    "dns",
    "jsonschema",
    "boto3",
    "botocore",
    "cryptography",
    "yaml",
)
COMMAND_MODULES = sorted({module for module, _ in LAZY_COMMANDS.values()})


def loaded_after(code: str) -> list[str]:
    """The top-level packages imported by `code` in a new interpreter."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_importing_the_cli_imports_no_heavy_library() -> None:
    loaded = loaded_after("import pipeline.cli")
    assert "click" in loaded  # the probe itself works
    assert [name for name in HEAVY if name in loaded] == []


def test_help_imports_no_command_module_and_no_heavy_library() -> None:
    code = (
        "import sys\nfrom pipeline.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "import pipeline.commands as c\n"
        "print('commands:', sorted(m for m in sys.modules if m.startswith('pipeline.commands.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Commands:" in done.stdout and "sign-request" in done.stdout
    assert "commands: ['pipeline.commands.common']" in done.stdout
    loaded = loaded_after(code)
    assert [name for name in HEAVY if name in loaded] == []


def test_a_command_imports_its_module_when_it_runs() -> None:
    code = (
        "import sys\nfrom pipeline.cli import main\n"
        "try:\n    main(['keygen', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('loaded:', 'pipeline.commands.approvals' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage: -c keygen" in done.stdout  # keygen's own help
    assert done.stdout.strip().endswith("loaded: True")


def registered() -> dict[str, click.Command]:
    """Every command the command modules register, by name, imported for real."""
    found: dict[str, click.Command] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for module in COMMAND_MODULES:
            group = click.Group()
            importlib.import_module(f"pipeline.commands.{module}").register(group)
            for name in group.commands:
                found[name] = group.commands[name]
                assert LAZY_COMMANDS.get(name, (module,))[0] == module, name
    return found


def test_the_table_lists_every_registered_command_with_its_module() -> None:
    found = registered()
    assert sorted(found) == sorted(LAZY_COMMANDS), (
        "pipeline/cli_lazy.py LAZY_COMMANDS is out of date with the modules' register()"
    )


@pytest.mark.parametrize("limit", [20, 45, 60, 80])
def test_the_listing_shows_what_the_command_itself_would(limit: int) -> None:
    # The table holds the start of each help text; the listing must read exactly as click would
    # make it from the command's own help, at any terminal width up to max_content_width.
    for name, command in registered().items():
        stub = click.Command(name, help=LAZY_COMMANDS[name][1])
        assert stub.get_short_help_str(limit) == command.get_short_help_str(limit), name


def test_help_is_the_same_before_and_after_every_command_is_imported() -> None:
    runner = CliRunner()
    lazy = runner.invoke(main, ["--help"])
    assert lazy.exit_code == 0
    group = click.Group()  # a second root with everything imported, the way click lists it
    group.params = main.params
    group.help = main.help
    group.context_settings = main.context_settings
    for name in main.commands:  # iterating the lazy mapping imports every module
        group.add_command(main.commands[name], name)
    eager = runner.invoke(group, ["--help"], prog_name="main")
    assert lazy.output.replace("main", "X") == eager.output.replace("main", "X")
    assert sorted(group.commands) == sorted(main.commands)
    assert len(main.commands) == len(LAZY_COMMANDS) + 6  # the six defined in pipeline/cli.py


def test_a_command_missing_from_the_table_still_runs() -> None:
    # A module's new command that nobody added to the table yet: an unknown name imports every
    # module before click says "No such command".
    group = LazyGroup(name="dmarcops", params=main.params, callback=main.callback)
    table = {k: v for k, v in LAZY_COMMANDS.items() if k != "keygen"}
    group.commands = LazyCommands(group, table)
    assert "keygen" not in group.commands
    result = CliRunner().invoke(group, ["keygen", "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: dmarcops keygen" in result.output
    unknown = CliRunner().invoke(group, ["no-such-command"])
    assert unknown.exit_code == 1 and "No such command 'no-such-command'" in unknown.output
