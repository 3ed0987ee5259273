"""Stores: the Store protocol, the embedded SQLite store and its in-memory indexes."""
