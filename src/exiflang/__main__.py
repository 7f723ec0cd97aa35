"""`python -m exiflang ...` runs the command line."""
import sys

from exiflang.cli import main

sys.exit(main())
