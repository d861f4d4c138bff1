"""The Textual terminal UI: ``make_app(services)`` builds it, ``run(services)`` runs it."""
