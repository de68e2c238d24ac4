"""Finding clips: the filter language shared by the CLI, exports and the TUI (`filters`)
and the paged, sorted clip queries the browser reads (`query`)."""
