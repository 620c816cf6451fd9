import sys

from tentacle_agent.cli import main

sys.exit(main())
