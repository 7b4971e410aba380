"""The processes: the command line, long polling, the webhook server, the console."""
