"""The SQLite backend (WAL): the embedded default, one file shared by the processes of one edge."""
