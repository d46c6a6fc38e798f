import sys

from stembot.cli import main

sys.exit(main())
