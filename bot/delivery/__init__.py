"""Delivering what the bot sends on its own: claiming due deliveries from the
ledger, pacing them under Telegram's limits, sending and recording them."""
