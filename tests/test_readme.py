"""The README's commands are the ones CI and users run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bash_blocks_after(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command():
    command = _bash_blocks_after("## Tests")[0].strip()
    ci_lines = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l and not l.startswith(("#", "set ", "cd "))]
    assert ci_lines == [command]


def test_main_job_uses_only_existing_commands():
    from openjukebox.cli import build_parser

    command = _bash_blocks_after("## Set-up and the main job")[0]
    parser = build_parser()
    for part in command.split("&&"):
        words = part.split()
        if words and words[0] == "openjukebox":
            parser.parse_args(words[1:])  # exits (fails the test) on an unknown command or option
