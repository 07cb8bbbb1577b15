"""Messages: templates, consent, caps, delivery, tracking and measurement."""
