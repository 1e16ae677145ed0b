"""memlib: experiments on neural-network memorization, for the memlib book."""
__version__ = "0.1.0"

from .config import ConfigError, resolve  # noqa: E402,F401
from .data import DatasetUnavailable  # noqa: E402,F401
from .store import Result, Store  # noqa: E402,F401
