"""Allow ``python -m mschat``."""

from mschat.cli import main

if __name__ == "__main__":
    main()
