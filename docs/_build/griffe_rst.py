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


def to_markdown(text: str) -> str:
  text = _MATH.sub(lambda m: f"${m.group(1)}$", text)
  text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
  return _fence_examples(text)


class RstToMarkdown(griffe.Extension):
  """Rewrites each docstring of the loaded objects with :func:`to_markdown`."""

  def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
    if obj.docstring is not None:
      obj.docstring.value = to_markdown(obj.docstring.value)
