"""The package version (a leaf module: the results store records it without importing the package facade)."""
__version__ = "0.1.0"
