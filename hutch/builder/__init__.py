"""The reference builder's pure parts: reading a web app's manifest and generating an
Android Trusted Web Activity project from it."""
