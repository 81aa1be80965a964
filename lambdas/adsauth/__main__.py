import sys

from adsauth.cli import main

sys.exit(main())
