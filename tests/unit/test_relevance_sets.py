"""The goodbooks series labels of the relevance benchmark: parsing Goodreads' series markers."""
import pytest

from bench.relevance_sets import series_of, without_series


@pytest.mark.parametrize("title, series", [
    ("The Hunger Games (The Hunger Games, #1)", ["the hunger games"]),
    ("Mort (Death, #1; Discworld, #4)", ["death", "discworld"]),
    ("The Light Fantastic (Discworld, #2; Rincewind #2)", ["discworld", "rincewind"]),
    ("Debt of Bones (The Sword of Truth, #0.5)", ["the sword of truth"]),
    ("The Dark Elf Trilogy (Forgotten Realms: Dark Elf Trilogy, #1-3)", ["forgotten realms: dark elf trilogy"]),
    ("Saga #1", []),  # no marker in parentheses: not a series label
    ("Pride and Prejudice", []),
])
def test_series_of_reads_every_series_of_the_marker(title, series):
    assert series_of(title) == series


def test_without_series_removes_markers_wherever_they_are():
    # (the space left before the period is what the benchmark's texts and cached vectors hold)
    assert without_series("New Moon (Twilight, #2). Stephenie Meyer. 2006") == "New Moon . Stephenie Meyer. 2006"
    assert without_series("Mort (Death, #1; Discworld, #4)") == "Mort"
    assert without_series("Saga #1") == "Saga #1"
