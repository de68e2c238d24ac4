"""The clip browser, the app's home screen (a package: one module per concern).

query (the query, its pages, sort and filter, the top bar), detail (the pane follows the
cursor), navigation, audit and tasks (the key groups), screen (layout and bindings).
"""

from ambiscope.tui.screens.browser.screen import BrowserScreen

__all__ = ["BrowserScreen"]
