"""The catalog's schema revisions, oldest first; ``reporting-svc catalog upgrade`` applies them."""
