"""One module per ``lmsorch`` subcommand."""
