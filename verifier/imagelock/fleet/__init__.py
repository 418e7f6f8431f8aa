"""The rebuilder fleet: which images need a rebuilder's verdict (`watch`), one verdict per image
and rebuilder however many workers race (`once`), and what the fleet said (`status`)."""
