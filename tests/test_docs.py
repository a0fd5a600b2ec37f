"""The user docs (README.md, docs/): short, free of work-log narrative, every relative link
pointing at a file (and heading) that exists, and the README's usage examples valid configs."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from sharedsg.config import load_config

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README] + sorted(DOCS.rglob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _text_files():
    """README.md and every text file under docs/ (figures are binary)."""
    return [README] + sorted(p for p in DOCS.rglob("*") if p.is_file() and p.suffix in (".md", ".py", ".txt"))


def _slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", page.read_text(), flags=re.M)}


def test_the_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/"


def test_no_work_log_word_in_readme_or_docs():
    hits = [f"{p.relative_to(REPO)}:{i}" for p in _text_files()
            for i, line in enumerate(p.read_text().splitlines(), 1) if "session" in line.lower()]
    assert hits == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert broken == []


def _usage_commands():
    text = README.read_text()
    block = re.search(r"## Usage\n.*?```bash\n(.*?)```", text, flags=re.S).group(1)
    return [shlex.split(line.split("#")[0]) for line in block.splitlines()
            if line.startswith("sharedsg run ") or line.startswith("sharedsg sweep ")]


def test_the_readme_usage_examples_are_valid_configs():
    """Every `sharedsg run|sweep` example of the README's usage loads its configs and overrides."""
    commands = _usage_commands()
    assert len(commands) >= 4
    for argv in commands:
        files = [a for a in argv[2:] if not a.startswith("-") and "=" not in a and a.endswith(".yaml")]
        overrides = [a for a in argv[2:] if "=" in a and not a.startswith("-")]
        paths = [p for f in files for p in sorted(REPO.glob(f))]
        assert paths, argv
        for path in paths:
            load_config(str(path), overrides)


def test_the_separate_sg_example_runs_separate_synthetic_gradients():
    """The README's "separate-SG arm only" example keeps the SGs on (not bp_only) and separates them."""
    text = README.read_text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("sharedsg run") and "separate-SG arm only" in ln]
    argv = shlex.split(line.split("#")[0])
    cfg = load_config(str(REPO / argv[2]), [a for a in argv[3:] if "=" in a])
    assert cfg.sg.sharing == "separate" and cfg.learner.mixing != "bp_only"


def test_the_readme_local_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """The usage examples that need no Ray and no dataset (`--local` on the shipped sample) run verbatim."""
    from sharedsg.cli import main

    local = [argv for argv in _usage_commands() if "--local" in argv]
    assert local, "the README shows a --local example"
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    for argv in local:
        assert main(argv[1:]) == 0, argv
        out = capsys.readouterr().out
        results = Path(re.search(r"^results: (.+)$", out, flags=re.M).group(1))
        assert results.is_file() and results.is_relative_to(tmp_path / "runs")
