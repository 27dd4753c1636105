"""MkDocs hooks: the API reference, one page per public module of jaxphys, generated at
build time (a module added to the package gets its page without editing mkdocs.yml), and
the lesson code's import path."""

from __future__ import annotations

import logging
import pkgutil
import posixpath
import re
import sys
import time
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "jaxphys"
# Pages that another branch provides; left out of the nav (with a note) until they exist.
OPTIONAL_PAGES = ("physics/reference.md", "physics/susy_toy.md")
log = logging.getLogger("mkdocs.hooks.jaxphys")


def public_modules() -> list[str]:
  """Dotted names of the package and its modules, none of whose parts starts with ``_``."""
  names = [PACKAGE]
  for info in pkgutil.walk_packages([str(ROOT / PACKAGE)], prefix=f"{PACKAGE}."):
    if not any(part.startswith("_") or part == "conftest" for part in info.name.split(".")):
      names.append(info.name)
  return sorted(names)


def _is_package(name: str) -> bool:
  return (ROOT / Path(*name.split(".")) / "__init__.py").exists()


def _page(name: str) -> str:
  """A package with public modules: its docstring and links to theirs (their pages show
  the functions it re-exports); a module, or a package whose modules are private: all
  its public members."""
  children = [m for m in public_modules() if m.rsplit(".", 1)[0] == name]
  if children:
    links = "\n".join(f"- [`{m}`]({m}.md)" for m in children)
    return (f"# `{name}`\n\n::: {name}\n    options:\n      members: false\n"
            f"      show_root_heading: false\n\n## Modules\n\n{links}\n")
  return f"# `{name}`\n\n::: {name}\n    options:\n      show_root_heading: false\n"


def _drop_missing(nav, docs_dir: Path):
  kept = []
  for entry in nav:
    (title, value), = entry.items() if isinstance(entry, dict) else ((None, entry),)
    if isinstance(value, list):
      value = _drop_missing(value, docs_dir)
      if value:
        kept.append({title: value})
    elif value in OPTIONAL_PAGES and not (docs_dir / value).exists():
      log.info("nav: %s is not in this checkout yet; left out", value)
    else:
      kept.append(entry)
  return kept


def on_config(config):
  # The lessons import jaxphys from this checkout, and `lesson` (their helpers).
  sys.path[:0] = [str(ROOT), str(ROOT / "docs" / "_build")]
  config["nav"] = _drop_missing(config["nav"], Path(config["docs_dir"]))
  config["nav"].append({"API reference": [{m: f"api/{m}.md"} for m in public_modules()]})
  return config


def on_page_markdown(markdown, page, config, files):
  """Starts the page's clock; a link to a missing optional page becomes its plain text."""
  page.meta["_started"] = time.perf_counter()
  docs_dir = Path(config["docs_dir"])

  def unlink(match):
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), match.group(2)))
    missing = target in OPTIONAL_PAGES and not (docs_dir / target).exists()
    return match.group(1) if missing else match.group(0)

  return re.sub(r"\[([^\]]+)\]\(([^)#]+\.md)(?:#[^)]*)?\)", unlink, markdown)


def on_page_content(html, page, config, files):
  """Logs how long the page took to render, its lesson code included."""
  seconds = time.perf_counter() - page.meta.get("_started", time.perf_counter())
  if seconds > 1:
    log.info("%s: %.1f s", page.file.src_uri, seconds)
  return html


def on_files(files, config):
  for name in public_modules():
    files.append(File.generated(config, f"api/{name}.md", content=_page(name)))
  return files
