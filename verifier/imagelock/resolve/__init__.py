"""Resolve stage: intent (the spec) into pins (the lock), one module per input kind."""
