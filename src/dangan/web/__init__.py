"""The two web faces of dangan: the REST API (/api/v1) and the Chinese web pages, over the same services."""
