"""CLI subcommands that need no Ray."""
