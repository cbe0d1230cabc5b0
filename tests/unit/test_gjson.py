"""Switch conditions are GJSON paths: the syntax KServe's router reads them with."""

from __future__ import annotations

import re

import pytest

from pipeline_operator.api.gjson import PathError, check


@pytest.mark.parametrize(
    "condition",
    [
        "confident",
        "predictions.0.confident",
        "first name",
        "fav\\.movie",
        "child*.2",
        "c?ildren.0",
        "friends.#",
        "friends|#",
        "friends.#.age",
        'instances.#(lang=="fr")',
        "instances.#(lang==fr)",
        "predictions.#(confident==false)",
        "predictions.#(score < 0.9)#",
        'friends.#(last="Murphy")#.first',
        'friends.#(first%"D*").last',
        'children.#(!%"*a*")',
        'friends.#(nets.#(=="fb"))#.first',
        "vals.#(b==~true)#.a",
        "vals.#(b!=~*)#.a",
        "instances.#(text)",
        "children.@reverse.0",
        "@this",
        'routing.@dig:score|@pretty:{"sortKeys":true}',
        "[@this].#(confident==false)",
        '{name.first,age,"the_murphys":friends.#(last="Murphy")#.first}',
        '{name.first,"company":!"Happysoft","employed":!true}',
        "!true",
    ],
)
def test_gjson_paths_are_accepted(condition: str) -> None:
    check(condition)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("confident == false", "'=' in a key must be escaped as '\\=' (to compare values"),
        ("confidence < 0.9", "'<' in a key must be escaped as '\\<'"),
        ("$.predictions[0]", "'$' in a key must be escaped"),
        ("predictions[0].label", "'[' in a key must be escaped"),
        ('instances.#(lang=="fr"', "expected ')' closing the query at column 23"),
        ('instances.#(lang=="fr)', "expected a JSON string"),
        ("a.#(b===1)", "expected a value"),
        ("a.#(b=)", 'expected a value: "text", a number, true, false or null at column 7'),
        ("a.#(b==~maybe)", "expected one of ~true, ~false, ~null, ~*"),
        ("a.#(b=={})", "a query compares with a string, number, true, false or null"),
        ("a.#()", "expected a path or a comparison in the query at column 5"),
        ("a.#(b==1)c", "unexpected 'c' at column 10"),
        ('a.#[b=="x"]', "'#[...]' is GJSON's old query syntax"),
        ("a..b", "empty path component at column 3"),
        ("a.", "empty path component at column 3"),
        (".a", "empty path component at column 1"),
        ("a|", "empty path component"),
        ("a\\", "'\\' escapes nothing at column 2"),
        ("a.@foo", "unknown modifier '@foo'"),
        ("a.@dig:", "expected an argument of @dig"),
        ("[a,b", "expected ',' or ']'"),
        ("{a,}", "empty path component at column 4"),
        ('{"k" a}', "expected ':' after the key"),
        ("a.!true", "'!' in a key must be escaped"),
        ("!tru", "expected a JSON literal after '!'"),
        ("a b)", "')' in a key must be escaped as '\\)'"),
    ],
)
def test_what_gjson_would_not_read_as_meant_is_refused(condition: str, message: str) -> None:
    with pytest.raises(PathError, match=re.escape(message)):
        check(condition)
