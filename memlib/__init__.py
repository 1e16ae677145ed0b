"""memlib: experiments on neural-network memorization, for the memlib book."""
from ._version import __version__  # noqa: F401

import os as _os

# OpenMP threads that sleep while they wait instead of spinning: with another busy process on the machine,
# spinning threads oversubscribe the cores and training runs 3-7x slower (see memlib.device).  This only takes
# effect if torch's OpenMP runtime has not started yet, so it comes before any import of torch.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import ConfigError
from .experiments import resolve  # noqa: E402,F401
from .data import DatasetUnavailable  # noqa: E402,F401
from .result import Result  # noqa: E402,F401
from .store import Store  # noqa: E402,F401
