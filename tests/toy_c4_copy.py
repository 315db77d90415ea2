"""A second stage module that (wrongly) takes the NAME of tests/toy_c4_stage.py: two stages with one NAME are
refused in one line (tests/test_stage_contract.py)."""

from tests.toy_c4_stage import build  # noqa: F401

NAME = "c4_punctuation"
