"""The run report: `write_report(run_dir)` turns a run folder into a self-contained HTML page with PNG
plots; `plot_saturation(run_dir, out_png)` draws the post-saturation picture alone. Plots need the
`plots` extra (matplotlib)."""

from oneshot_rlvr.report.html import write_report
from oneshot_rlvr.report.plots import plot_saturation
from oneshot_rlvr.report.rundata import RunData, load_run

__all__ = ["RunData", "load_run", "plot_saturation", "write_report"]
