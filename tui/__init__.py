"""ambiscope terminal UI (Textual): browser, detail, jobs, metrics; see tui/app.py."""
