"""tikv-operator: watches TiKV clusters and turns broken health invariants into OperatorTickets.

How the parts fit is docs/design.md. Comments across the package cite its numbered ticket lifecycle rules
as "rule N" (rule 5: unknown is not resolved): those numbers are design.md's and no other document's.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tikv-operator")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
