"""The template's library in workflow/vendor/ is as shipped, or each patch of it is recorded."""

import checksums  # workflow/vendor/checksums.py (conftest.py puts workflow/vendor/ on the path)


def test_vendored_files_match_their_recorded_sha256():
    found = checksums.problems()
    assert not found, "\n".join([*found, checksums.HOW_TO_RECORD])
