"""Figures for the book: one seaborn style; plot functions take Results and never train."""
from .style import PALETTE, apply_style  # noqa: F401
