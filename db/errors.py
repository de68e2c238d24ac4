"""Errors of the persistence layer (dependency-free so the CLI can import it cheaply)."""


class WorkspaceError(Exception):
    """A workspace problem the user can act on; the message is one line."""
