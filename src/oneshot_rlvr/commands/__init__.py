"""One module per `rlvr` subcommand: `HELP`, `add_arguments(parser)`, `run(args) -> int`."""
