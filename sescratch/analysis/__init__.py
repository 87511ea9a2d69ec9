"""Reproduce the paper's analyses at a scale one machine can run (paper §6.4 and the TPAMI ablations).

* :mod:`sescratch.analysis.tables` — SE vs. plain (Table 2), the reduction ratio (Table 10)
  and the SE variants (Tables 11, 12, 14, 15) as rows of model configurations;
* :mod:`sescratch.analysis.experiments` — those rows as sweeps of training runs that resume;
* :mod:`sescratch.analysis.report` — the sweeps' tables as JSON, Markdown and PNG;
* :mod:`sescratch.analysis.excitations` — the role of excitation (Fig. 6 and Fig. 7);
* :mod:`sescratch.analysis.cli` — ``sescratch experiment ...`` and ``sescratch excitations``.

Measured results: ``docs/results.md``.
"""
from sescratch.analysis.excitations import collect_excitations, default_blocks, excitation_statistics
from sescratch.analysis.experiments import BUDGETS, EXPERIMENTS, Budget, Row, experiment_rows, run_experiment
from sescratch.analysis.report import build_report, markdown_table, write_report

__all__ = [
    "BUDGETS",
    "EXPERIMENTS",
    "Budget",
    "Row",
    "experiment_rows",
    "run_experiment",
    "build_report",
    "markdown_table",
    "write_report",
    "collect_excitations",
    "default_blocks",
    "excitation_statistics",
]
