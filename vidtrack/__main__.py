import sys

from vidtrack.cli import main

sys.exit(main())
