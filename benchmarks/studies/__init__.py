"""One-off investigations that explain a past design decision (see docs/)."""
