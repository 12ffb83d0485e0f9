"""One router per resource; each translates HTTP and delegates to the domain services."""
