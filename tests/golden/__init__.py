"""Golden streams: short recordings committed with the code, replayed by the tests.

Each ``*.jsonl.gz`` here was recorded from a system running one scenario on virtual time
(``python -m tests.golden.make_golden``); ``tests/e2e/test_golden_streams.py`` replays each into a
fresh system and asserts the exact outcome. See ``README.md`` in this directory.
"""
