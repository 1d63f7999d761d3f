"""``python -m streamport``: the same as the ``streamport`` command."""

from streamport.cli import main

main()
