"""StreamPulse's common code: settings, schema, models, text rules and trend maths."""
