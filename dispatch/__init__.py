"""The dispatcher's side: the live fleet, the HTTP API, incidents, and the composition root (`service`)."""
