"""The write side: Falcon resources that validate, authenticate and append to the log, and
the commands they run."""
