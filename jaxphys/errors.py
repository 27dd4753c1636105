"""The exceptions jaxphys raises for bad input. Each message is one line that names
the file or argument and what is wrong with it."""

__all__ = ["JaxphysError", "DataError"]


class JaxphysError(Exception):
  """Base class of jaxphys' own errors."""


class DataError(JaxphysError, ValueError):
  """A data file or data set is missing, malformed or inconsistent."""
