"""Every command written in the README, docs/ and the study READMEs still works with the
current configs and command lines, so a renamed key or command cannot linger.

* ``sed-train``, ``sed-predict``, ``sed-evaluate`` (and ``python -m sed_lightning.<app>``,
  ``make train ARGS="..."``) in a ```bash block: their overrides compose against the real
  configs and the structured schema, each value of a sweep at least once;
* ``sed-tools SUB ...``: parsed by the real ``sed-tools`` parser;
* the old top-level tool modules (``python -m sed_lightning.tune_postprocess`` and the like)
  appear nowhere in the Markdown.

A config folder a page writes out (a ```yaml block right after a line naming
```configs/<group>/<name>.yaml```) is made in a temporary folder, which ``$PWD`` then names:
the README's worked example of a user's own experiment composes for real.
``<placeholder>`` values are replaced by a plain word before parsing.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from sed_lightning.config import register_configs
from sed_lightning.tools import build_parser
from tests.conftest import ROOT

CONF = str(ROOT / "sed_lightning" / "conf")
APPS = {"train": "train", "predict": "predict", "evaluate": "evaluate"}
OLD_TOOLS = re.compile(
    r"sed_lightning\.(tune_postprocess|report|ensemble|median_study|tuning_cv|condition_study"
    r"|data\.online)\b(?!\.py)"
)


def pages() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in sorted((ROOT / "experiments").rglob("*.md")):
        if "runs" not in page.relative_to(ROOT / "experiments").parts:
            found.append(page)
    found += sorted((ROOT / "benchmarks").rglob("*.md"))
    return found


def fenced(text: str, lang: str) -> Iterator[tuple[str, str]]:
    """``(line before the block, body)`` of every ```lang block."""
    for match in re.finditer(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        yield before, match.group(1)


def command_lines(block: str) -> Iterator[str]:
    """Logical lines (backslash continuations joined), comments and blanks left out."""
    current = ""
    for raw in block.splitlines():
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip() and not current.strip().startswith("#"):
            yield current.strip()
        current = ""


def app_and_args(tokens: list[str]) -> tuple[str, list[str]] | None:
    """``("train" | "predict" | "evaluate" | "tools", arguments)``, or ``None`` for another
    program (``pip``, ``git``, ...)."""
    while tokens and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0]):  # VAR=value prefix
        tokens = tokens[1:]
    if not tokens:
        return None
    program = Path(tokens[0]).name
    if program.startswith("sed-"):
        return program[4:], tokens[1:]
    if re.fullmatch(r"python[0-9.]*", program) and tokens[1:2] == ["-m"] and len(tokens) > 2:
        module = tokens[2]
        if module.startswith("sed_lightning."):
            return module.split(".", 1)[1], tokens[3:]
    if program == "make" and len(tokens) > 1 and tokens[1] == "train":
        args = [t.split("=", 1)[1] for t in tokens[2:] if t.startswith("ARGS=")]
        return "train", shlex.split(" ".join(args))
    return None


def sweep_combinations(overrides: list[str]) -> list[list[str]]:
    """Overrides with every sweep (``a=1,2``, ``range(...)``) given one value at a time:
    each value appears in at least one combination (not the whole product)."""
    parser = OverridesParser.create()
    columns = []
    for text in overrides:
        override = parser.parse_override(text)
        if override.is_sweep_override():
            key = override.get_key_element()
            columns.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            columns.append([text])
    rows = zip_longest(*columns) if columns else [()]
    return [
        [v if v is not None else col[0] for v, col in zip(row, columns, strict=True)]
        for row in rows
    ]


def user_configs(text: str, folder: Path) -> None:
    """Write the ``configs/...yaml`` files a page spells out into ``folder``."""
    for before, body in fenced(text, "yaml"):
        name = re.search(r"`((?:[\w.-]+/)*configs/[\w/.-]+\.yaml)`", before)
        if name:
            path = folder / name.group(1)[name.group(1).index("configs/") :]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)


def commands() -> list[tuple[str, str]]:
    found = []
    for page in pages():
        for _, block in fenced(page.read_text(), "bash"):
            for line in command_lines(block):
                found.append((str(page.relative_to(ROOT)), line))
    return found


COMMANDS = commands()


def test_the_pages_hold_commands_of_every_kind():
    """The test would pass vacuously if the block format changed: check it finds them."""
    kinds = {app_and_args(shlex.split(line, comments=True)) is not None for _, line in COMMANDS}
    apps = {
        parsed[0]
        for _, line in COMMANDS
        if (parsed := app_and_args(shlex.split(line, comments=True)))
    }
    assert True in kinds and {"train", "predict", "evaluate", "tools"} <= apps
    assert len(COMMANDS) > 50


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_names_a_removed_tool_module(page):
    old = [m.group(0) for m in OLD_TOOLS.finditer(page.read_text())]
    assert not old, f"{page}: removed modules {old}; use sed-tools SUB (docs/inference.md)"


@pytest.mark.parametrize(
    ("page", "line"), COMMANDS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(COMMANDS)]
)
def test_documented_command_runs_against_the_current_configs(page, line, tmp_path):
    user_configs((ROOT / page).read_text(), tmp_path)
    line = re.sub(r"<[^<>\s]*>", "placeholder", line)
    line = line.replace("$PWD", str(tmp_path)).replace("${PWD}", str(tmp_path))
    parsed = app_and_args(shlex.split(os.path.expandvars(line), comments=True))
    if parsed is None:
        return  # another program: pip, git, make test ...
    app, args = parsed
    if app == "tools":
        try:
            build_parser().parse_args(args)
        except SystemExit as err:
            pytest.fail(f"{page}: `{line}`: sed-tools refuses it (exit {err.code})")
        return
    assert app in APPS, f"{page}: `{line}`: no command sed-{app}"
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    flags = [a for a in overrides if a.startswith("-")]
    assert set(flags) <= {"--cfg", "--help", "job", "--info"}, f"{page}: `{line}`: {flags}"
    overrides = [a for a in overrides if not a.startswith("-") and a not in ("job", "hydra")]
    register_configs()
    for combination in sweep_combinations(overrides):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=CONF, version_base="1.3"):
                compose(APPS[app], overrides=combination, return_hydra_config=True)
        except Exception as err:  # noqa: BLE001 - the message is the finding
            pytest.fail(f"{page}: `{line}`\n  {type(err).__name__}: {err}")
        finally:
            GlobalHydra.instance().clear()
