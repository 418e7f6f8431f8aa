"""Build steps: commands run in the assembled image root, each giving one layer."""
