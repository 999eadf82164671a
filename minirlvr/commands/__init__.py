"""One file per `minirlvr <command>`: its arguments, `main(argv)` and its printing. Nothing in the library imports
these files; minirlvr/cli.py picks one by name."""
