"""``python -m mediaserver`` runs the ``carillon`` command."""

from mediaserver.app import main

main()
