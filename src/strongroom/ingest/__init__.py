"""Ingestion: sources, parsers, chunking and the pipeline that stores document versions."""
