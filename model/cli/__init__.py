"""The `swintormer` subcommands of the workshop: convert, data, eval, profile and train."""
