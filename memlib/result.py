"""What every experiment returns, and what the results store keeps: :class:`Result`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Result:
    """Plain tables (DataFrames), JSON-able scalars and numeric arrays: what every experiment returns.

    ``arrays`` (keyword only, so ``Result(tables, scalars, ...)`` keeps its meaning) holds what a table would
    store badly, such as images: an ``N x C x H x W`` block is one ``.npy`` file, not ``C*H*W`` CSV columns.
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    scalars: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    arrays: dict[str, np.ndarray] = field(default_factory=dict, kw_only=True)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]
