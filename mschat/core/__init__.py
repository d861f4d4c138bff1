"""The core: models, rules (SessionManager), events and errors. No front-end imports."""
