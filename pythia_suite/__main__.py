import sys

from pythia_suite.cli import main

sys.exit(main())
