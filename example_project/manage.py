#!/usr/bin/env python
"""Django's command-line utility for the example project."""

from __future__ import annotations

import os
import sys


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    # Let a plain checkout work without `pip install -e .` (the Makefile installs it anyway).
    repo_root = os.path.dirname(here)
    if repo_root not in sys.path:
        sys.path.append(repo_root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
