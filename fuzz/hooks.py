"""Schemathesis hooks for MediLink: what counts as a failure, and the one scalar it cannot make.

Schemathesis's own `not_a_server_error` check calls any error raised by a resolver a server
error unless its code is one Apollo uses, so it would flag UNAUTHENTICATED, FORBIDDEN,
NOT_FOUND and CONFLICT. MediLink's codes are a closed set in which only INTERNAL is the server's
fault, so this check replaces it.
"""

import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "CONFLICT",
    "RATE_LIMITED",
    "PAYMENT_REQUIRED",
}

# A licence is a multipart file part; a JSON request can only put some value where it goes,
# which the server must refuse as bad input.
schemathesis.graphql.scalar("Upload", st.text(max_size=16).map(nodes.String))

# Strings: Hypothesis's text, and text made of pieces that databases and parsers treat
# specially (PostgreSQL refuses NUL in text), so that they turn up in most runs.
AWKWARD = st.sampled_from(
    ["\0", "\u202e", "\ufeff", "\r\n", "\\", "'", '"', "%00", "%", "_", "\U0001f642", "\u0085", " "]
)
STRINGS = st.one_of(
    st.text(),
    st.lists(st.one_of(st.text(max_size=8), AWKWARD), max_size=12).map("".join),
)
schemathesis.graphql.scalar("String", STRINGS.map(nodes.String))


@schemathesis.check
def medilink_errors(ctx, response, case):
    """No 5xx; a JSON body; every error has one of the client codes (never INTERNAL)."""
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.text[:500]}")
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"not a JSON response (HTTP {response.status_code})")
    if not isinstance(body, dict):
        raise AssertionError("the response is not a JSON object")
    for error in body.get("errors") or []:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        code = extensions.get("code") if isinstance(extensions, dict) else None
        if code == "INTERNAL":
            raise AssertionError(f"INTERNAL error: {error.get('message')}")
        if code not in CODES:
            raise AssertionError(f"an error without a known extensions.code: {error}")
