"""The `hutch` program: its command line, the one route table, and the processes it runs
(ingest workers, the query process, projectors) wired from the layers below."""
