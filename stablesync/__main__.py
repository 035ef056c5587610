import sys

from stablesync.cli import main

sys.exit(main())
