"""Entry point of ``python -m mc``."""

import sys

from mc._cli import main

if __name__ == "__main__":
    sys.exit(main())
