"""Griffe extension: jaxphys docstrings (reStructuredText roles, doctest examples) as Markdown.

The docstrings use Sphinx roles (``:func:`jaxphys.fit```, ``:math:`\\sigma(x)```) and bare
``>>>`` examples, which pytest runs. Markdown would show the roles verbatim and read
``>>>`` as a block quote, so before rendering: roles become inline code, ``:math:`` becomes
inline math, and each run of example lines becomes a ``pycon`` code block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other "
                      r"Parameters|Returns|Return|Yields|Receives|Raises|Warns|Attributes|"
                      r"Examples?|Notes?|Warnings?|See Also|References|Methods|Functions|"
                      r"Classes|Modules):\s*$")
_ROLE = re.compile(r":(?:func|class|mod|data|attr|meth|obj|exc|const):`~?([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")


def _fence_examples(text: str) -> str:
  """Wraps every run of lines starting with ``>>>`` (and its ``...`` lines and output,
  up to a blank line) in a ``pycon`` fence, keeping the indentation."""
  out, lines, i = [], text.split("\n"), 0
  while i < len(lines):
    line = lines[i]
    if not line.lstrip().startswith(">>>"):
      out.append(line)
      i += 1
      continue
    indent = line[: len(line) - len(line.lstrip())]
    block = []
    while i < len(lines) and lines[i].strip():
      block.append(lines[i])
      i += 1
    out += [f"{indent}```pycon", *block, f"{indent}```"]
  return "\n".join(out)


def _indent(line: str) -> int:
  return len(line) - len(line.lstrip())


def _fence_literal_blocks(text: str) -> str:
  """Wraps an indented block that follows a blank line and is indented deeper than the
  text before it (reStructuredText's literal block, e.g. a command line) in a ``text``
  fence; Markdown would otherwise read it as part of a list item or paragraph. Blocks under
  a Google-style section header are the section's content and stay as they are."""
  out, lines, i, previous = [], text.split("\n"), 0, None
  while i < len(lines):
    line = lines[i]
    starts_block = (line.strip() and previous is not None and i > 0 and not lines[i - 1].strip()
                    and _indent(line) > _indent(previous) and not _SECTION.match(previous)
                    and not line.lstrip().startswith((">>>", "```")))
    if not starts_block:
      out.append(line)
      if line.strip():
        previous = line
      i += 1
      continue
    indent, block = " " * _indent(previous), []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > _indent(previous)):
      block.append(lines[i])
      i += 1
    while block and not block[-1].strip():
      block.pop()
      i -= 1
    if out and out[-2:-1] and out[-2].rstrip().endswith("::"):
      out[-2] = out[-2].rstrip()[:-1]
    depth = min(_indent(b) for b in block if b.strip())
    out += [f"{indent}```text", *(indent + b[depth:] for b in block), f"{indent}```"]
    previous = block[-1]
  return "\n".join(out)


def to_markdown(text: str) -> str:
  text = _MATH.sub(lambda m: f"${m.group(1)}$", text)
  text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
  return _fence_examples(_fence_literal_blocks(text))


class RstToMarkdown(griffe.Extension):
  """Rewrites each docstring of the loaded objects with :func:`to_markdown`."""

  def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
    if obj.docstring is not None:
      obj.docstring.value = to_markdown(obj.docstring.value)
