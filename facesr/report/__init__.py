"""The static report: Table 4.1 beside the thesis, Fig. 4.2-4.4-style figures, curves, parsing maps.

`build_report(...)` writes ``index.html`` + ``report.md`` + ``img/*.png`` into one folder, with
relative paths only, so the report opens from disk (file://) with no server.
"""

from facesr.report.build import ReportError, build_report

__all__ = ["ReportError", "build_report"]
