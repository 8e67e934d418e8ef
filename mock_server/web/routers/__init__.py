"""One router per area of the web face, each exposing ``router``."""
