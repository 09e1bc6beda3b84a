"""The ``rws-ref`` command line.

Errors in the arguments give one readable line on stderr and exit status 2,
never a traceback.
"""
import argparse
import sys

from . import __version__


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    parser = _Parser(
        prog="rws-ref",
        description="Reference implementation of Reweighted Wake-Sleep: "
                    "ELBO_IS, wake-θ, wake-φ and sleep-φ with hand-derived gradients, "
                    "checked against closed forms, exact enumeration and autograd.")
    parser.add_argument("--version", action="version", version=f"rws-ref {__version__}")
    return parser


def main(argv=None):
    """Entry point of the ``rws-ref`` console script; returns the exit status."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
