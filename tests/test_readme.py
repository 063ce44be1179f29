"""The README's commands and study example are what the code accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from hpsearch.cli import main
from hpsearch.studies import builtin_names, load_spec
from hpsearch.training import TASKS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def hpsearch_commands() -> list[list[str]]:
    commands = []
    for block in blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part.split("#")[0])
                while words and "=" in words[0]:  # leading VAR=value assignments
                    words = words[1:]
                if words[:1] == ["hpsearch"]:
                    commands.append(words[1:])
    return commands


@pytest.mark.parametrize("args", hpsearch_commands(), ids=" ".join)
def test_every_readme_command_parses(args):
    group = main.make_context("hpsearch", list(args), resilient_parsing=False)
    command = main.get_command(group, args[0])
    assert command is not None, f"no command {args[0]}"
    with command.make_context(args[0], list(args[1:]), parent=group):
        pass


def test_the_readme_covers_every_command_and_builtin_study():
    used = {args[0] for args in hpsearch_commands()}
    assert used == set(main.commands)
    for name in builtin_names():
        assert f"`{name}`" in README


def test_the_readme_study_example_is_a_valid_spec(tmp_path):
    [example] = [b for b in blocks("toml") if "[space]" in b]
    path = tmp_path / "my-study.toml"
    path.write_text(example)
    spec = load_spec(str(path), TASKS)
    assert spec.name == "my-study" and len(spec.space) >= 10


def test_click_rejects_what_the_readme_must_not_say():
    group = main.make_context("hpsearch", ["run"], resilient_parsing=False)
    with pytest.raises(click.UsageError):
        main.get_command(group, "run").make_context("run", ["--no-such-option"], parent=group)
