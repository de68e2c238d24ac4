"""ambiscope's front ends: the Textual workbench (`app`, `screens/`, `widgets/`) and the
click command line (`cli/`), both thin over `ambiscope.core`. Nothing imports this package."""
