"""Flag writes: define and delete definitions (the app's owner), and SDKs' evaluation
reports."""
