"""Sources the bot follows by itself: calendar feeds and data files over HTTPS."""
