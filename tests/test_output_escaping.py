"""User strings in every command's output: escaped for the terminal, the pull-request markdown and
the GitHub Actions log, exact in the JSON plan.

A change request's rationale, a TXT value or an evidence line is written by whoever opens the pull
request. In a reviewer's terminal an ESC sequence can clear the screen or forge a link; in a
pull-request comment `</details>` closes the section around it, `@team` pings people and
`[text](javascript:...)` makes a link. Each must arrive as the text it is, never as markup.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from click.testing import CliRunner, Result
from portfolio import copy_example

from pipeline.cli import main
from pipeline.errors import EXIT_CRASH
from pipeline.github.pr import workflow_command
from pipeline.text.safe import json_text

REQUEST = "changes/requests/CR-0001-fabrikam-labs.yaml"
RATIONALE = (
    "SendGrid for invoices.</details><details open><summary>approved</summary> cc @msp/dns-team "
    "[click here](javascript:alert(1)) <img src=x onerror=alert(1)>"
    "\x1b[2J\x1b]8;;https://evil.example\x07link\x1b]8;;\x07 \u202eexe.txt\u200b|x|"
)
RAW = ("\x1b", "\x07", "\u202e", "\u200b")
OUR_STYLES = re.compile(r"\x1b\[[0-9;]*m")  # click.style's own colours


def run(repo: Path, *args: str) -> Result:
    result = CliRunner().invoke(
        main,
        ["--repo", str(repo), *args],
        env={"DMARCOPS_DEBUG": None, "DMARCOPS_NOW": None},
        color=True,  # as on a terminal: click would otherwise strip escape sequences itself
    )
    assert result.exit_code != EXIT_CRASH, result.output
    assert "Traceback" not in result.output
    return result


def raw_controls(output: str) -> list[str]:
    return [ch for ch in RAW if ch in OUR_STYLES.sub("", output)]


def hostile_repo(tmp_path: Path) -> Path:
    repo = copy_example(tmp_path / "repo")
    request = yaml.safe_load((repo / REQUEST).read_text())
    request["rationale"] = RATIONALE
    request["evidence"] = [RATIONALE]
    (repo / REQUEST).write_text(yaml.safe_dump(request, sort_keys=False))
    return repo


def test_a_hostile_rationale_is_plain_text_in_the_markdown_plan(tmp_path: Path) -> None:
    repo = hostile_repo(tmp_path)
    result = run(repo, "plan", "--format", "markdown", "--zone", "fabrikam.example")
    out = result.stdout
    assert "SendGrid for invoices." in out  # the rationale is shown...
    assert raw_controls(out) == []  # ...without its controls,
    assert "\\</details\\>" in out  # closes no section,
    assert not re.search(r"(?<!\\)<(/?details|summary|img)", out)  # opens no tag,
    assert "@msp" not in out and "&#64;msp/dns-team" in out  # pings nobody,
    assert "\\[click here\\](javascript:" in out  # and links nowhere (no "[text](url)"):
    assert not re.search(r"(?<!\\)\]\(javascript", out)
    assert "\\\\x1b\\[2J" in out  # the escape is visible as text (markdown-escaped)


def test_a_hostile_rationale_is_escaped_in_the_terminal(tmp_path: Path) -> None:
    repo = hostile_repo(tmp_path)
    for args in (("plan", "--zone", "fabrikam.example"), ("requests", "check"), ("validate",)):
        result = run(repo, *args)
        assert raw_controls(result.output) == [], (args, result.output)


def test_the_json_plan_has_no_raw_controls(tmp_path: Path) -> None:
    repo = hostile_repo(tmp_path)
    result = run(repo, "plan", "--format", "json", "--zone", "fabrikam.example")
    assert raw_controls(result.stdout) == []
    assert json.loads(result.stdout)["changes"]


def test_json_text_escapes_each_unprintable_character_and_keeps_every_value() -> None:
    # C1 controls, bidi, zero-width, line separators, private use, an astral format character
    # (a surrogate pair), next to printable text in several scripts and an astral emoji, on
    # lines with and without them: the JSON reads back the same and shows nothing raw.
    odd = "\x85\x9b\u202e\u200b\u2028\u2029\ue000\U000e0001\xa0\xad\ufeff"
    value = {"k\u2066": [odd, "plain", "grüße 名前 \U0001f600", odd[::-1] + "x"], "n": 1}
    text = json_text(json.dumps(value, indent=2, ensure_ascii=False))
    assert json.loads(text) == value
    assert [ch for ch in text if not ch.isprintable() and ch != "\n"] == []
    assert "\\u202e" in text and "\\udb40\\udc01" in text and "grüße 名前 \U0001f600" in text
    assert json_text("already\nprintable") == "already\nprintable"


LIVE = "sandbox/live/fabrikam.example.yaml"
HOSTILE_TXT = "v=DMARC1; p=none; rua=mailto:d@fabrikam.example\x1b[8m\u202e @admins </td>"


def test_a_hostile_live_txt_value_is_escaped_in_every_format(tmp_path: Path) -> None:
    """octoDNS refuses control characters in a zone file, but live DNS (here the sandbox's live
    zone) can serve anything: the plan shows it as the `before` of the update."""
    repo = copy_example(tmp_path / "repo")
    live = yaml.safe_load((repo / LIVE).read_text())
    live["_dmarc"] = {"type": "TXT", "value": HOSTILE_TXT.replace(";", "\\;")}
    (repo / LIVE).write_text(yaml.safe_dump(live, sort_keys=False))
    outputs = {}
    for fmt in ("text", "markdown", "json"):
        result = run(repo, "plan", "--format", fmt, "--zone", "fabrikam.example")
        assert raw_controls(result.output) == [], (fmt, result.output)
        outputs[fmt] = result.stdout
    assert "rua=mailto:d@fabrikam.example\\x1b[8m\\u202e @admins" in outputs["text"]
    # In markdown the value is a code span (shown literally by GitHub); outside code spans,
    # in the prose that quotes it, it pings nobody and closes no table cell.
    assert (
        "`v=DMARC1; p=none; rua=mailto:d@fabrikam.example\\x1b[8m\\u202e @admins </td>`"
        in (outputs["markdown"])
    )
    prose = re.sub(r"(`+).*?\1", "", outputs["markdown"])
    assert "@admins" not in prose and "</td>" not in prose and "&#64;admins" in prose
    before = [c["before"] for c in json.loads(outputs["json"])["changes"] if c["name"] == "_dmarc"]
    assert before == [[HOSTILE_TXT]]  # machines get the exact value, through JSON escapes


def test_an_error_quoting_a_hostile_file_name_is_escaped(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    name = "evil\x1b[2J\u202etxt.yaml"
    (repo / "changes" / "requests" / name).write_text("type: nonsense\n")
    result = run(repo, "requests", "check")
    assert result.exit_code == 1
    assert raw_controls(result.output) == []
    assert "evil\\x1b[2J\\u202etxt.yaml" in result.output  # named, visibly


def test_workflow_commands_show_controls_escaped() -> None:
    """The Actions log renders ANSI sequences: an annotation must not carry one."""
    line = workflow_command("error", "bad value \x1b[31mred\u202e\nsecond line", "a\x1b.yaml", 3)
    assert raw_controls(line) == []
    assert line == "::error file=a\\x1b.yaml,line=3::bad value \\x1b[31mred\\u202e%0Asecond line"
