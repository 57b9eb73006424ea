"""The shared Falcon kit: the app factory, error mapping, authentication, body reading,
query parameters, request metrics and client timeouts."""
