"""The ``text2mesh`` command line: click commands mapping flags onto config fields."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="text2mesh")
def cli() -> None:
    """Text-driven 3D mesh stylization."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point; ``argv`` lets tests call it in-process."""
    cli.main(args=argv, prog_name="text2mesh")
