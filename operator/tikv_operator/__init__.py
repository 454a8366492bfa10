"""tikv-operator: watches TiKV clusters and turns broken health invariants into OperatorTickets."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tikv-operator")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
