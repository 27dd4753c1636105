"""Helpers of the lessons' hidden code blocks."""

from __future__ import annotations

import base64
import io


def figure_html(fig, alt: str = "figure") -> str:
  """``fig`` as an inline PNG ``<img>`` element, for a markdown-exec block with ``html="1"``
  to print (markdown-exec captures the block's own ``print``, not ``sys.stdout``)."""
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=96)
  data = base64.b64encode(buf.getvalue()).decode("ascii")
  return f'<img alt="{alt}" src="data:image/png;base64,{data}" />'
