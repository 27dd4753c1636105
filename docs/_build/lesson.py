"""What the lessons' hidden code blocks use: figures into the page, data made small."""

from __future__ import annotations

import base64
import io


def show(fig, alt: str = "figure") -> None:
  """Prints ``fig`` as an inline PNG ``<img>`` (for a markdown-exec block with ``html="1"``)."""
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=96)
  data = base64.b64encode(buf.getvalue()).decode("ascii")
  print(f'<img alt="{alt}" src="data:image/png;base64,{data}" />')
