"""Python wheels: installing pinned wheels into the image tree."""
