"""How the bot reaches a Bot API: Telegram over HTTP, or an in-process emulator."""
