"""mkdocs hooks: the docs' links to source files work on the site as they do on GitHub.

The pages in docs/ link to the code with relative links (`../conformance/api.py`,
`../tests/mutants/`), which GitHub renders as links into the repository. On the site those
targets are outside `docs_dir`, and `mkdocs build --strict` rejects them. Rather than guess a
repository URL (the site must also work from a CI artifact, offline), this hook gives each
linked file a generated page under `source/` -- the file in a code block -- and each linked
directory a listing, and points the links there. The Markdown in docs/ is not changed, so
GitHub goes on rendering it as before.

Used from mkdocs.yml (`hooks: [tools/mkdocs_hooks.py]`); mkdocs loads it by path.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path, PurePosixPath
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

SOURCE = "source"  # where the generated pages go, inside the site
# A Markdown link or image target: `](target)` or `](target "title")`, no spaces inside.
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?((?:\s+\"[^\"]*\")?\))")
LANGUAGES = {".py": "python", ".toml": "toml", ".md": "markdown", ".json": "json",
             ".yml": "yaml", ".yaml": "yaml", ".sh": "sh", ".c": "c", ".h": "c"}


def _root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).resolve().parent


def _outside_target(page_src: str, target: str, config: MkDocsConfig) -> Path | None:
    """The repository path a relative link of `page_src` points to, if it leaves docs/."""
    if "://" in target or target.startswith(("/", "mailto:")):
        return None
    docs = Path(config.docs_dir).resolve()
    path = (docs / PurePosixPath(page_src).parent / target).resolve()
    root = _root(config)
    if path.is_relative_to(docs) or not path.is_relative_to(root) or not path.exists():
        return None
    return path


def _page_uri(path: Path, config: MkDocsConfig) -> str:
    rel = path.relative_to(_root(config)).as_posix()
    if path.is_dir():
        return f"{SOURCE}/{rel}/index.md" if rel != "." else f"{SOURCE}/index.md"
    return f"{SOURCE}/{rel}.md"


def _listed(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix != ".pyc")


def _source_page(path: Path, config: MkDocsConfig) -> str:
    rel = path.relative_to(_root(config)).as_posix()
    if path.is_dir():
        lines = [f"# `{rel}/`", ""]
        lines += [f"- [`{p.name}`]({p.name}.md)" for p in _listed(path)]
        return "\n".join(lines) + "\n"
    text = path.read_text(encoding="utf-8")
    fence = "````" if "```" in text else "```"
    language = LANGUAGES.get(path.suffix, "text")
    return f"# `{rel}`\n\n{fence}{language}\n{text.rstrip()}\n{fence}\n"


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    """Add a generated page for every file and directory outside docs/ that a page links."""
    wanted: dict[str, Path] = {}
    for file in list(files.documentation_pages()):
        for match in LINK.finditer(Path(file.abs_src_path or "").read_text(encoding="utf-8")):
            path = _outside_target(file.src_uri, match.group(2), config)
            if path is None:
                continue
            wanted[_page_uri(path, config)] = path
            if path.is_dir():  # a listing links each of its files
                wanted.update({_page_uri(p, config): p for p in _listed(path)})
    for uri, path in sorted(wanted.items()):
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, content=_source_page(path, config)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files,
                     **kwargs: Any) -> str:
    """Point each link that leaves docs/ at its generated page."""
    if page.file.src_uri.startswith(f"{SOURCE}/"):
        return markdown

    def rewrite(match: re.Match[str]) -> str:
        path = _outside_target(page.file.src_uri, match.group(2), config)
        if path is None:
            return match.group(0)
        here = posixpath.dirname(page.file.src_uri) or "."
        target = posixpath.relpath(_page_uri(path, config), here)
        return f"{match.group(1)}{target}{match.group(3) or ''}{match.group(4)}"

    return LINK.sub(rewrite, markdown)
