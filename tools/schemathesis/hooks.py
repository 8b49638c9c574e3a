"""A check schemathesis has no built-in for: with ST_EXPECT_UNAUTHORIZED set (the run without
a credential), every call must answer 401 - not 403, not 404, not a 2xx."""

import os

import schemathesis


@schemathesis.check
def unauthenticated_is_401(ctx, response, case):
    if os.environ.get("ST_EXPECT_UNAUTHORIZED") and response.status_code != 401:
        raise AssertionError(
            f"{case.method} {case.formatted_path} answered {response.status_code} without a credential"
        )
