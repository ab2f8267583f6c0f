"""Media helpers: probe, decode and encode. Stages call these; nothing here knows about stages."""
