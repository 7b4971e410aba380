"""The database layer of summitbot: models, migrations, the dataset and the domain queries.

It never imports ``telegram``: everything here is usable and tested without Telegram.
"""
