"""The ``fermion`` command line: one Typer app, with a sub-app per topic."""
