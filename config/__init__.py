"""Settings and the bundled dataset of summitbot."""
