"""Optional services as domain logic, without routes: webhooks, upload sessions,
persistence and the dashboard's view model."""
