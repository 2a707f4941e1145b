"""The static dashboard: branch list, branch logs with trends, commit pages, compare page.

Generated from the store (DESIGN "Query and reports"), served by any static web server, with
each page's data as JSON beside it. `write_dashboard` is the entry point for `watch`.
"""

from reconciler.app.dashboard.generate import DashboardReport, run_dashboard, write_dashboard

__all__ = ["DashboardReport", "run_dashboard", "write_dashboard"]
