"""Commands: one module per subcommand group, each thin (parse arguments, call library code,
print). `main` is the entry point. Commands may import anything; nothing imports a command
module except another command."""
