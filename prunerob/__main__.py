import sys

from prunerob.cli import main

sys.exit(main())
