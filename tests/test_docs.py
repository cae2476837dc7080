"""The README and docs/ hold together: the README stays short, every internal link resolves (to a
file, and to a heading when it names one), every repository file they cite exists, and no tracked
file speaks of the place the project was built in rather than of the project."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

from tests.support import REPO

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 150

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# What a program writes when it runs (a GPU measurement): cited, rightly, before it exists.
WRITTEN_BY_A_COMMAND = {
    "bench/reports/benchmark.json",  # python -m bench.benchmark --out bench/reports (on a GPU)
    "bench/reports/benchmark.md",
    "bench/reports/crossover.md",  # python -m bench.crossover --out ...
    "bench/reports/gpu_check.md",  # bash bench/gpu_check.sh
    "bench/reports/gpu_check.json",
}
# Words of the place a project was built in, not of the project: a clone has no such place. One
# letter of each is written as a class ([e]), so that this file, checked like every other, does
# not say them itself.
PLACE_WORDS = re.compile(
    r"devic[e] tool|/wor[k]/|\.librar[y]/"
    r"|no GP[U] (here|was l[e]nt|was available|has been available)"
    r"|\bl[e]nt\b|the issu[e] asks|as the issu[e]|issu[e] #\d|\(#\d+\)|#\d+'s"
    r"|\bthis sessio[n]\b|\bsessio[n]s\b|share[d]/reference|share[d]/tools",
    re.IGNORECASE,
)


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return listed.splitlines()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "").lower()
    kept = "".join(
        c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN"
    )  # letters and digits of any script, spaces, hyphens, underscores
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def prose(page: Path) -> str:
    return FENCE.sub("", page.read_text())


def test_the_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    # The two commands come first.
    first_block = README.read_text().split("```")[1]
    assert "bash scripts/demo.sh" in first_block and "bash scripts/test.sh" in first_block
    assert (REPO / "scripts" / "demo.sh").is_file() and (REPO / "scripts" / "test.sh").is_file()


def test_every_page_says_who_it_is_for():
    for page in PAGES[1:]:
        opening = prose(page).split("\n\n")[1]  # the paragraph under the title
        assert re.match(r"(For |.*\bfor\b)", opening), f"{page.name} opens without its reader"


def internal_links() -> list[tuple[Path, str]]:
    return [
        (page, target)
        for page in PAGES
        for target in LINK.findall(prose(page))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto: ...
    ]


@pytest.mark.parametrize(
    "page,target", internal_links(), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_every_internal_link_resolves(page, target):
    path, _, fragment = target.partition("#")
    linked = (page.parent / path).resolve() if path else page
    assert linked.exists(), f"{page.relative_to(REPO)} links to {target}: no such file"
    if fragment and linked.suffix == ".md":
        assert fragment in anchors(linked), (
            f"{page.relative_to(REPO)} links to {target}: {linked.name} has no heading "
            f"#{fragment} (it has {sorted(anchors(linked))})"
        )


def cited_paths() -> list[tuple[Path, str]]:
    """Backticked repository paths in the pages' prose: a first component that is one of the
    repository's top-level entries (`pipelines/tier2.py`, `cog.yaml`), an optional `::test`
    dropped. Paths of other projects (`cog/server/http.py`) or of things made at run time
    (`.cog/`, `weights/`, `outputs/`) have another first component and are not citations."""
    top_level = {name.split("/")[0] for name in tracked_files()}
    found = []
    for page in PAGES:
        for code in INLINE_CODE.findall(prose(page)):
            path = code.split("::")[0].rstrip("/")
            is_path = re.fullmatch(r"[\w.-]+(/[\w.-]+)*", path) and ("/" in path or "." in path)
            if is_path and path.split("/")[0] in top_level:
                found.append((page, path))
    return found


def test_pages_cite_repository_files():
    assert len(cited_paths()) > 50  # the scan finds what the pages cite


@pytest.mark.parametrize(
    "page,path", cited_paths(), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_every_cited_file_exists(page, path):
    tracked = set(tracked_files())
    folders = {name.rsplit("/", 1)[0] for name in tracked} | {
        "/".join(name.split("/")[:depth])
        for name in tracked
        for depth in range(1, name.count("/") + 1)
    }
    assert path in tracked or path in folders or path in WRITTEN_BY_A_COMMAND, (
        f"{page.relative_to(REPO)} cites `{path}`, which the repository does not hold"
    )


def test_no_tracked_file_speaks_of_where_it_was_built():
    found = []
    for name in tracked_files():
        path = REPO / name
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), 1):
            if PLACE_WORDS.search(line.replace('scope="session"', "")):
                found.append(f"{name}:{number}: {line.strip()[:120]}")
    assert not found, "words of the place, not of the project:\n" + "\n".join(found)
