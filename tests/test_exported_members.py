import strongroom


def test_public_api_is_pinned() -> None:
    assert sorted(strongroom.__all__) == sorted(
        [
            "Answer",
            "Chunk",
            "Citation",
            "Claim",
            "ConfigError",
            "CorruptDocument",
            "DocumentVersion",
            "Embedder",
            "EmbeddingError",
            "ExtractiveGenerator",
            "Generator",
            "Hit",
            "IngestError",
            "IngestOptions",
            "IngestReport",
            "Page",
            "ParsedDocument",
            "Principal",
            "QueryError",
            "Runtime",
            "Scope",
            "Settings",
            "Store",
            "StoreError",
            "StrongroomError",
            "TooLarge",
            "UnsupportedFormat",
            "answer",
            "create_embedder",
            "ingest",
            "open_runtime",
            "search",
        ]
    )
    for name in strongroom.__all__:
        assert getattr(strongroom, name) is not None
