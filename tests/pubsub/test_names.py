"""normalise_processor_name: publisher class names to config names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline_reliability.errors import InvalidInputError
from pipeline_reliability.pubsub import normalise_processor_name

# (class name the processors publish, name in the orchestration config): PRODUCTION-SHAPES §2.2.
PRODUCTION_NAMES = [
    ("PlayerGameSummaryProcessor", "player_game_summary"),
    ("TeamDefenseGameSummaryProcessor", "team_defense_game_summary"),
    ("TeamOffenseGameSummaryProcessor", "team_offense_game_summary"),
    ("UpcomingPlayerGameContextProcessor", "upcoming_player_game_context"),
    ("AsyncUpcomingPlayerGameContextProcessor", "upcoming_player_game_context"),
    ("UpcomingTeamGameContextProcessor", "upcoming_team_game_context"),
    ("TeamDefenseZoneAnalysisProcessor", "team_defense_zone_analysis"),
    ("PlayerShotZoneAnalysisProcessor", "player_shot_zone_analysis"),
    ("PlayerCompositeFactorsProcessor", "player_composite_factors"),
    ("PlayerDailyCacheProcessor", "player_daily_cache"),
    ("MLFeatureStoreProcessor", "ml_feature_store"),
]


@pytest.mark.parametrize(("published", "config"), PRODUCTION_NAMES)
def test_production_class_names_map_to_config_names(published: str, config: str) -> None:
    """Every class name the production processors publish maps to its config name."""
    assert config == normalise_processor_name(published)


@pytest.mark.parametrize(
    "name", ["player_game_summary", "p2_bigdataball_pbp", "p2_nbacom_gamebook_pdf", "x"]
)
def test_snake_case_names_pass_through(name: str) -> None:
    """A name that is already snake_case comes back unchanged."""
    assert name == normalise_processor_name(name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Processor", "processor"),  # nothing left to strip
        ("AsyncProcessor", "processor"),
        ("Asynchronous", "asynchronous"),  # "Async" is a prefix only before a capital
        ("MLFeatureStoreV2Processor", "ml_feature_store_v2"),
        ("  PlayerDailyCacheProcessor  ", "player_daily_cache"),
        ("Player_Game_Summary", "player_game_summary"),
    ],
)
def test_edge_cases(name: str, expected: str) -> None:
    """Prefix/suffix stripping and acronyms follow the documented rules."""
    assert expected == normalise_processor_name(name)


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_blank_or_non_string_is_rejected(name: object) -> None:
    """A blank or non-string name raises InvalidInputError."""
    with pytest.raises(InvalidInputError):
        normalise_processor_name(name)  # type: ignore[arg-type]


@given(st.lists(st.sampled_from(["Player", "Game", "ML", "Zone", "V2", "Cache"]), min_size=1))
def test_normalising_is_idempotent(words: list[str]) -> None:
    """Normalising a normalised name changes nothing."""
    once = normalise_processor_name("".join(words) + "Processor")

    assert once == normalise_processor_name(once)
