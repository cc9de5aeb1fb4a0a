"""A check keyclerk adds to schemathesis' own (the run uses `--checks all`, which
takes it in): a request the API document calls well-formed is never refused for its
shape. `schemathesis.toml` lets a few operations answer such a request 422 for a
rule no schema can state; this keeps those 422s to the rules' own codes."""

import ast
import threading

import schemathesis

# CPython before 3.13 keeps the AST converter's recursion depth per interpreter, not
# per thread (python/cpython#106905): two workers describing a Hypothesis lambda at
# once fail with "AST constructor recursion depth mismatch". One parse at a time.
_parse = ast.parse
_parsing = threading.Lock()


def _parse_alone(*args, **kwargs):
    with _parsing:
        return _parse(*args, **kwargs)


ast.parse = _parse_alone

# The codes of a refusal for the request's shape (see `docs/openapi.json`).
SHAPE_CODES = frozenset({"invalid_json", "missing_field", "invalid_field", "invalid_parameter"})


@schemathesis.check
def well_formed_requests_are_not_refused_for_their_shape(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 422):
        return None
    try:
        problem = response.json()
    except ValueError:
        return None
    code = problem.get("code") if isinstance(problem, dict) else None
    if code in SHAPE_CODES:
        raise AssertionError(
            f"A request the document calls well-formed was refused with {response.status_code} "
            f"`{code}`: {problem.get('detail')}"
        )
    return None
