"""The marketer's back office: server-rendered pages on the same services as the API."""
