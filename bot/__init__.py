"""The Telegram-facing layer of summitbot."""
