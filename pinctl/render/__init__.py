"""Terminal views: plain text and rich, one TTY/NO_COLOR rule."""
