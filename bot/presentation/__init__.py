"""What people read: messages and buttons rendered from views, in their language
and script, calendar files, and the data buttons carry."""
