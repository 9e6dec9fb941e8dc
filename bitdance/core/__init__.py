"""Neutral shared facts (vocabularies) that both the data side and the evaluation side import."""
