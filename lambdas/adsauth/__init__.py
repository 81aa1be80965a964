"""adsauth: an authorization broker for the Amazon Ads API (Login with Amazon)."""

# The package's version (pyproject.toml reads it from here). This module imports nothing, so
# every function and the ``adsauth`` command pay nothing for it.
__version__ = "0.12.0"
