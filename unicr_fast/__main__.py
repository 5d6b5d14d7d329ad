"""``python -m unicr_fast ...`` runs the ``unicr`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
