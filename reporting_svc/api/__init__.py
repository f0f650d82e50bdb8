"""The REST API's blueprints."""
