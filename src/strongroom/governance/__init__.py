"""Governance a regulator would accept, as pure rules over the vocabulary: retention policies
and legal holds (what may be deleted, and when), erasure plans (what an erasure must reach),
the model registry's stages and release gates, and lineage records.

The application layer (``strongroom.service``) stores these, enforces them for every entry
point and audits every step; nothing here does I/O of its own.
"""
