"""The Telegram Mini App: a calendar, a timeline of chairs and the chat's reminders.

See docs/webapp.md for the layout and the JSON API between ``api.py`` and ``static/app.js``.
"""
