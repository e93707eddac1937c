"""Bridge to RobustBench: its JSON entry layout (export and import as reference rows) and
its model zoo as registry entries ``robustbench:<model_name>``."""

from benchmark.robustbench.entries import (
    export_entries,
    read_entries,
    reference_rows,
    to_entries,
)

__all__ = ["export_entries", "read_entries", "reference_rows", "to_entries"]
