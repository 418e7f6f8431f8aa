"""Where images live: one image model, and an adapter per place (OCI layout, docker-archive,
registry) that reads into it or writes out of it."""
