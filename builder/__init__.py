"""The reference builder worker, a program of its own: it claims web-app builds over Hutch's
HTTP API with its own worker token, packages them and uploads the result. It never opens
Hutch's stores."""
