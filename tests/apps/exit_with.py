"""An application that prints a line and exits with the code it is given (argv[1])."""

import sys

print(f"exiting with {sys.argv[1]} on purpose", flush=True)
sys.exit(int(sys.argv[1]))
