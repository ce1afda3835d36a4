"""The application: validated settings, the `outpost` command, the composition root and supervision."""
