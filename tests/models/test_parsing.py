"""Recovering reasoning and text-written tool calls (emotau.models.parsing)."""

from __future__ import annotations

import json
import random

import pytest

from emotau.models._parsing import TextToolCall, recover_tool_calls, split_reasoning

TOOLS = {
    "get_user_details",
    "get_reservation_details",
    "cancel_reservation",
    "search_direct_flight",
    "update_reservation_flights",
    "list_all_airports",
}


def _calls(content: str | None, tools: set[str] = TOOLS) -> list[tuple[str, dict, str]]:
    calls, _ = recover_tool_calls(content, tools)
    return [(c.name, json.loads(c.arguments), c.style) for c in calls]


# --------------------------------------------------------------------------------------------
# hermes / qwen
# --------------------------------------------------------------------------------------------


def test_hermes_two_calls_qwen_style() -> None:
    content = (
        "I'll look up your profile and the reservation.\n"
        "<tool_call>\n"
        '{"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}\n'
        "</tool_call>\n"
        "<tool_call>\n"
        '{"name": "get_reservation_details", "arguments": {"reservation_id": "NO6JO3"}}\n'
        "</tool_call>"
    )
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert calls == [
        TextToolCall("get_user_details", '{"user_id": "mia_li_3668"}', "hermes"),
        TextToolCall("get_reservation_details", '{"reservation_id": "NO6JO3"}', "hermes"),
    ]
    assert remaining == "I'll look up your profile and the reservation."


def test_hermes_arguments_as_json_string() -> None:
    content = (
        "<tool_call>\n"
        '{"name": "cancel_reservation", "arguments": "{\\"reservation_id\\": \\"ZFA04Y\\"}"}\n'
        "</tool_call>"
    )
    assert _calls(content) == [("cancel_reservation", {"reservation_id": "ZFA04Y"}, "hermes")]
    assert recover_tool_calls(content, TOOLS)[1] == ""


def test_hermes_parameters_key_and_no_whitespace() -> None:
    content = (
        '<tool_call>{"name":"get_user_details","parameters":{"user_id":"sara_doe_496"}}</tool_call>'
    )
    assert _calls(content) == [("get_user_details", {"user_id": "sara_doe_496"}, "hermes")]


def test_hermes_missing_closing_tag_at_end() -> None:
    content = (
        "Let me check that for you.\n<tool_call>\n"
        '{"name": "get_reservation_details", "arguments": {"reservation_id": "4WQ150"}}\n'
    )
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert [(c.name, c.style) for c in calls] == [("get_reservation_details", "hermes")]
    assert json.loads(calls[0].arguments) == {"reservation_id": "4WQ150"}
    assert remaining == "Let me check that for you."


def test_hermes_missing_closing_tag_keeps_text_after_the_call() -> None:
    content = (
        '<tool_call>\n{"name": "get_user_details", "arguments": {"user_id": "a"}}\n'
        "I'll wait for the result."
    )
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert [c.name for c in calls] == ["get_user_details"]
    assert remaining == "I'll wait for the result."


def test_hermes_unknown_tool_name_still_recovered() -> None:
    content = (
        '<tool_call>\n{"name": "refund_everything", "arguments": {"amount": 500}}\n</tool_call>'
    )
    assert _calls(content) == [("refund_everything", {"amount": 500}, "hermes")]


def test_hermes_no_arguments_means_empty_object() -> None:
    content = '<tool_call>{"name": "list_all_airports"}</tool_call>'
    calls, _ = recover_tool_calls(content, TOOLS)
    assert calls == [TextToolCall("list_all_airports", "{}", "hermes")]


def test_hermes_text_between_and_after_blocks_kept() -> None:
    content = (
        "First your profile.\n"
        '<tool_call>{"name": "get_user_details", "arguments": {"user_id": "a"}}</tool_call>\n'
        "Then the booking.\n"
        '<tool_call>{"name": "get_reservation_details", "arguments": {"reservation_id": "B"}}'
        "</tool_call>\nOne moment."
    )
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert len(calls) == 2
    assert remaining == "First your profile.\n\nThen the booking.\n\nOne moment."


def test_hermes_malformed_json_is_a_call_with_an_error() -> None:
    body = '{"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}'
    content = f"Checking.\n<tool_call>\n{body}\n</tool_call>"
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert calls == [
        TextToolCall(
            "get_user_details",
            body,
            "hermes",
            "the <tool_call> text could not be read: arguments are not valid JSON "
            f"(Expecting ',' delimiter at position {len(body)}): {body}",
        )
    ]
    assert remaining == "Checking."  # the broken call text never stays in the message


def test_hermes_unclosed_cut_call_is_a_call_with_an_error() -> None:
    # a model that ran out of tokens in the middle of its call (finish_reason "length")
    content = 'Let me look.\n<tool_call>\n{"name": "get_user_details", "arguments": {"user_'
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert [(c.name, c.style) for c in calls] == [("get_user_details", "hermes")]
    assert calls[0].arguments == '{"name": "get_user_details", "arguments": {"user_'
    assert calls[0].error is not None
    assert "arguments are not valid JSON (Unterminated string" in calls[0].error
    assert "the <tool_call> tag was never closed" in calls[0].error
    assert remaining == "Let me look."


def test_hermes_unclosed_broken_call_stops_at_the_next_block() -> None:
    good = '<tool_call>{"name": "get_user_details", "arguments": {"user_id": "a"}}</tool_call>'
    calls, remaining = recover_tool_calls(f'<tool_call>{{"name": "x", "argu\n{good}', TOOLS)
    assert [(c.name, c.error is not None) for c in calls] == [
        ("x", True),
        ("get_user_details", False),
    ]
    assert json.loads(calls[1].arguments) == {"user_id": "a"}
    assert remaining == ""


def test_hermes_malformed_block_and_good_block_are_both_calls() -> None:
    bad = '<tool_call>{"name": get_user_details}</tool_call>'
    good = '<tool_call>{"name": "get_user_details", "arguments": {"user_id": "a"}}</tool_call>'
    calls, remaining = recover_tool_calls(f"{bad}\n{good}", TOOLS)
    assert [c.name for c in calls] == ["<unparsed>", "get_user_details"]  # a name not quoted
    assert calls[0].error and "not valid JSON" in calls[0].error and calls[1].error is None
    assert remaining == ""


def test_hermes_arguments_not_an_object_is_a_call_with_an_error() -> None:
    content = '<tool_call>{"name": "get_user_details", "arguments": ["mia"]}</tool_call>'
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert [c.name for c in calls] == ["get_user_details"] and remaining == ""
    assert calls[0].error is not None and "arguments must be a JSON object" in calls[0].error


def test_hermes_broken_call_error_quotes_at_most_a_snippet() -> None:
    body = '{"name": "get_user_details", "arguments": {"user_id": "' + "x" * 5000
    (call,), _ = recover_tool_calls(f"<tool_call>{body}", TOOLS)
    assert call.arguments == body  # the record keeps it whole
    assert call.error is not None and len(call.error) < 400 and call.error.endswith("x...")


def test_hermes_wins_over_python_in_the_same_text() -> None:
    content = (
        '<tool_call>{"name": "get_user_details", "arguments": {"user_id": "a"}}</tool_call>\n'
        'cancel_reservation(reservation_id="X")'
    )
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert [(c.name, c.style) for c in calls] == [("get_user_details", "hermes")]
    assert remaining == 'cancel_reservation(reservation_id="X")'


# --------------------------------------------------------------------------------------------
# bare JSON
# --------------------------------------------------------------------------------------------


def test_json_object_with_parameters() -> None:
    content = '{"name": "get_user_details", "parameters": {"user_id": "omar_rossi_1241"}}'
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert calls == [TextToolCall("get_user_details", '{"user_id": "omar_rossi_1241"}', "json")]
    assert remaining == ""


def test_json_list_of_calls() -> None:
    content = json.dumps(
        [
            {"name": "get_user_details", "arguments": {"user_id": "omar_rossi_1241"}},
            {"name": "get_reservation_details", "arguments": {"reservation_id": "FQ8APE"}},
        ],
        indent=2,
    )
    assert _calls(content) == [
        ("get_user_details", {"user_id": "omar_rossi_1241"}, "json"),
        ("get_reservation_details", {"reservation_id": "FQ8APE"}, "json"),
    ]


def test_json_in_json_fence() -> None:
    content = (
        "```json\n"
        '{"name": "search_direct_flight", "arguments": '
        '{"origin": "JFK", "destination": "SEA", "date": "2024-05-20"}}\n'
        "```"
    )
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert [(c.name, c.style) for c in calls] == [("search_direct_flight", "json")]
    assert json.loads(calls[0].arguments) == {
        "origin": "JFK",
        "destination": "SEA",
        "date": "2024-05-20",
    }
    assert remaining == ""


def test_json_openai_shape_with_string_arguments() -> None:
    content = json.dumps(
        {
            "type": "function",
            "function": {
                "name": "cancel_reservation",
                "arguments": json.dumps({"reservation_id": "ZFA04Y"}),
            },
        }
    )
    assert _calls(content) == [("cancel_reservation", {"reservation_id": "ZFA04Y"}, "json")]


def test_json_function_key_shape() -> None:
    content = '{"function": {"name": "get_user_details", "parameters": {"user_id": "a"}}}'
    assert _calls(content) == [("get_user_details", {"user_id": "a"}, "json")]


def test_json_unknown_name_not_recovered() -> None:
    content = '{"name": "Mia Li", "arguments": {"age": 34}}'
    assert recover_tool_calls(content, TOOLS) == ([], content)


def test_json_list_with_one_unknown_name_not_recovered() -> None:
    content = json.dumps(
        [
            {"name": "get_user_details", "arguments": {"user_id": "a"}},
            {"name": "delete_database", "arguments": {}},
        ]
    )
    assert recover_tool_calls(content, TOOLS) == ([], content)


def test_json_plain_object_not_a_call() -> None:
    content = '{"reservation_id": "NO6JO3", "status": "cancelled"}'
    assert recover_tool_calls(content, TOOLS) == ([], content)


def test_json_must_be_the_whole_content() -> None:
    content = (
        'Here is the call I would make: {"name": "get_user_details", '
        '"arguments": {"user_id": "a"}} - shall I go ahead?'
    )
    assert recover_tool_calls(content, TOOLS) == ([], content)


# --------------------------------------------------------------------------------------------
# python style
# --------------------------------------------------------------------------------------------


def test_python_llama_pythonic_list() -> None:
    content = (
        '[get_user_details(user_id="mia_li_3668"), '
        'search_direct_flight(origin="JFK", destination="SEA", date="2024-05-20")]'
    )
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert [(c.name, c.style) for c in calls] == [
        ("get_user_details", "python"),
        ("search_direct_flight", "python"),
    ]
    assert json.loads(calls[1].arguments) == {
        "origin": "JFK",
        "destination": "SEA",
        "date": "2024-05-20",
    }
    assert remaining == ""


def test_python_gemma_tool_code_fence() -> None:
    content = "```tool_code\nget_reservation_details(reservation_id='NO6JO3')\n```"
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert calls == [
        TextToolCall("get_reservation_details", '{"reservation_id": "NO6JO3"}', "python")
    ]
    assert remaining == ""


def test_python_call_after_a_sentence() -> None:
    content = (
        "Sure, I can help you cancel that booking. First I need to look at it.\n\n"
        '```python\nget_reservation_details(reservation_id="ZFA04Y")\n```'
    )
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert _calls(content) == [("get_reservation_details", {"reservation_id": "ZFA04Y"}, "python")]
    assert len(calls) == 1
    assert remaining == "Sure, I can help you cancel that booking. First I need to look at it."


def test_python_call_inline_after_sentence() -> None:
    content = 'Let me check your profile. get_user_details(user_id="mia_li_3668")'
    calls, remaining = recover_tool_calls(content, TOOLS)
    assert [c.name for c in calls] == ["get_user_details"]
    assert remaining == "Let me check your profile."


def test_python_several_calls_on_separate_lines() -> None:
    content = 'get_user_details(user_id="a")\nget_reservation_details(reservation_id="B")'
    assert _calls(content) == [
        ("get_user_details", {"user_id": "a"}, "python"),
        ("get_reservation_details", {"reservation_id": "B"}, "python"),
    ]


def test_python_nested_literal_arguments() -> None:
    content = (
        "update_reservation_flights(reservation_id='4WQ150', cabin='economy', "
        "flights=[{'flight_number': 'HAT170', 'date': '2024-05-22'}, "
        "{'flight_number': 'HAT022', 'date': '2024-05-23'}], "
        "payment={'id': 'credit_card_4421486', 'amount': -12.5}, "
        "insurance=None, notify=True, seats=(1, 2))"
    )
    assert _calls(content) == [
        (
            "update_reservation_flights",
            {
                "reservation_id": "4WQ150",
                "cabin": "economy",
                "flights": [
                    {"flight_number": "HAT170", "date": "2024-05-22"},
                    {"flight_number": "HAT022", "date": "2024-05-23"},
                ],
                "payment": {"id": "credit_card_4421486", "amount": -12.5},
                "insurance": None,
                "notify": True,
                "seats": [1, 2],
            },
            "python",
        )
    ]


def test_python_string_argument_with_parentheses_and_quotes() -> None:
    content = (
        """cancel_reservation(reservation_id="X1", reason="change of plan (it's \\"urgent\\")")"""
    )
    assert _calls(content) == [
        (
            "cancel_reservation",
            {"reservation_id": "X1", "reason": 'change of plan (it\'s "urgent")'},
            "python",
        )
    ]


def test_python_no_argument_call() -> None:
    assert _calls("list_all_airports()") == [("list_all_airports", {}, "python")]


def test_python_prose_mention_not_recovered() -> None:
    content = "I will call get_user_details next, then cancel_reservation once you confirm."
    assert recover_tool_calls(content, TOOLS) == ([], content)


def test_python_positional_argument_not_recovered() -> None:
    content = 'get_user_details("mia_li_3668")'
    assert recover_tool_calls(content, TOOLS) == ([], content)


@pytest.mark.parametrize(
    "content",
    [
        "get_user_details(user_id=open('a'))",
        "get_user_details(user_id=__import__('os').system('id'))",
        "get_user_details(user_id=uid)",
        "get_user_details(user_id=...)",
        "get_user_details(user_id=b'raw')",
        "get_user_details(user_id={1, 2})",
        "get_user_details(user_id=1e999)",
        "get_user_details(**{'user_id': 'a'})",
        "get_user_details(user_id=f'{x}')",
    ],
)
def test_python_non_literal_values_not_recovered(content: str) -> None:
    assert recover_tool_calls(content, TOOLS) == ([], content)


def test_python_unknown_name_not_recovered() -> None:
    content = 'book_hotel(city="Paris")'
    assert recover_tool_calls(content, TOOLS) == ([], content)


def test_python_list_with_one_invalid_call_not_recovered() -> None:
    content = '[get_user_details(user_id="a"), cancel_reservation("B")]'
    assert recover_tool_calls(content, TOOLS) == ([], content)


def test_python_list_with_one_unknown_name_not_recovered() -> None:
    content = '[get_user_details(user_id="a"), book_hotel(city="Paris")]'
    assert recover_tool_calls(content, TOOLS) == ([], content)


def test_python_call_quoted_mid_sentence_not_recovered() -> None:
    content = (
        "I can't run cancel_reservation(reservation_id='ZFA04Y') until you confirm. "
        "Would you like me to proceed?"
    )
    assert recover_tool_calls(content, TOOLS) == ([], content)


def test_python_method_or_prefixed_name_not_recovered() -> None:
    for content in ("api.get_user_details(user_id='a')", "my_get_user_details(user_id='a')"):
        assert recover_tool_calls(content, TOOLS) == ([], content)


def test_python_needs_tool_names() -> None:
    content = 'get_user_details(user_id="a")'
    assert recover_tool_calls(content, []) == ([], content)


# --------------------------------------------------------------------------------------------
# degenerate input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "remaining"),
    [
        (None, ""),
        ("", ""),
        ("   ", "   "),
        ("{", "{"),
        ("</tool_call>", "</tool_call>"),
        ("get_user_details(", "get_user_details("),
        ("[get_user_details(user_id='a'", "[get_user_details(user_id='a'"),
    ],
)
def test_degenerate_input_returns_content(content: str | None, remaining: str) -> None:
    assert recover_tool_calls(content, TOOLS) == ([], remaining)


@pytest.mark.parametrize(
    ("content", "remaining"),
    [("<tool_call>", ""), ("\x00\xff\ud800<tool_call>{\x00}", "\x00\xff\ud800")],
)
def test_degenerate_tool_call_tag_is_an_unreadable_call(content: str, remaining: str) -> None:
    calls, rest = recover_tool_calls(content, TOOLS)
    assert [(c.name, c.style) for c in calls] == [("<unparsed>", "hermes")]
    assert calls[0].error and "never closed" in calls[0].error and rest == remaining


def test_huge_and_deeply_nested_input_does_not_raise() -> None:
    for content in (
        "[" * 100_000,
        "get_user_details(user_id=" + "[" * 5_000 + "]" * 5_000 + ")",
        '{"name": "get_user_details", "arguments": ' + "[" * 100_000,
        "get_user_details(" * 20_000,
    ):
        calls, remaining = recover_tool_calls(content, TOOLS)
        assert calls == []
        assert remaining == content
    for body in ("{" * 100_000, "[" * 50_000 + "]" * 50_000):  # tags: an unreadable call
        calls, remaining = recover_tool_calls(f"<tool_call>{body}</tool_call>", TOOLS)
        assert [(c.arguments, c.error is not None) for c in calls] == [(body, True)]
        assert remaining == ""


def test_fuzz_fragments_never_raise() -> None:
    fragments = [
        "<tool_call>",
        "</tool_call>",
        "<think>",
        "</think>",
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        '"name"',
        '"arguments"',
        '"parameters"',
        ":",
        ",",
        "=",
        '"',
        "'",
        "\\",
        "get_user_details",
        "cancel_reservation",
        "get_x",
        "user_id",
        "1",
        "None",
        "```",
        "```json",
        "```tool_code",
        "\n",
        " ",
        "...",
        "#",
        "\x00",
        "é",
        # whole calls, so that some strings hold a recoverable call among the noise
        '<tool_call>{"name": "get_x", "arguments": {"user_id": 1}}</tool_call>',
        "get_x(user_id=1)",
        '{"name": "get_x", "arguments": {}}',
    ]
    rng = random.Random(20240520)
    recovered = 0
    for _ in range(500):
        content = "".join(rng.choice(fragments) for _ in range(rng.randint(0, 40)))
        calls, remaining = recover_tool_calls(content, TOOLS | {"get_x"})
        assert isinstance(remaining, str)
        for call in calls:
            assert isinstance(call, TextToolCall)
            assert call.style in {"hermes", "json", "python"}
            if call.error is None:
                assert isinstance(json.loads(call.arguments), dict)
            else:  # an unreadable <tool_call> block: its text, and why
                assert call.style == "hermes" and call.error.startswith("the <tool_call> text")
        if not calls:
            assert remaining == content
        recovered += bool(calls)
        visible, reasoning = split_reasoning(content, rng.choice([None, "", "server says"]))
        assert isinstance(visible, str)
        assert reasoning is None or isinstance(reasoning, str)
        assert "</think>" not in visible.lower()
    # some strings do hold a well-formed call; catches a parser that silently recovers nothing
    assert recovered > 0


# --------------------------------------------------------------------------------------------
# split_reasoning
# --------------------------------------------------------------------------------------------


def test_reasoning_one_block() -> None:
    content = (
        "<think>\nThe user wants to cancel ZFA04Y. Policy says I must confirm first.\n</think>\n\n"
        "Before I cancel reservation ZFA04Y, can you confirm you want to proceed?"
    )
    assert split_reasoning(content) == (
        "Before I cancel reservation ZFA04Y, can you confirm you want to proceed?",
        "The user wants to cancel ZFA04Y. Policy says I must confirm first.",
    )


def test_reasoning_two_blocks_case_insensitive() -> None:
    content = (
        "<THINK>first thought</THINK>Hello! <Think>\nsecond\nthought\n</think> How can I help?"
    )
    assert split_reasoning(content) == (
        "Hello!  How can I help?",
        "first thought\n\nsecond\nthought",
    )


def test_reasoning_closing_tag_only() -> None:
    content = (
        "Okay, the user greeted me. I should ask for their user id.\n</think>\n\n"
        "Hi! What is your user id?"
    )
    assert split_reasoning(content) == (
        "Hi! What is your user id?",
        "Okay, the user greeted me. I should ask for their user id.",
    )


def test_reasoning_unterminated_block() -> None:
    content = "Sure.\n<think>\nLet me think about which flights are direct and"
    assert split_reasoning(content) == (
        "Sure.",
        "Let me think about which flights are direct and",
    )


def test_reasoning_field_joined_before_blocks() -> None:
    content = "<think>block reasoning</think>Your booking is confirmed."
    assert split_reasoning(content, "  server reasoning \n") == (
        "Your booking is confirmed.",
        "server reasoning\n\nblock reasoning",
    )


def test_reasoning_field_only() -> None:
    assert split_reasoning("  Hello there.  ", "I should greet.") == (
        "Hello there.",
        "I should greet.",
    )


def test_no_reasoning() -> None:
    assert split_reasoning("  How can I help you today?\n") == ("How can I help you today?", None)
    assert split_reasoning("plain", "") == ("plain", None)


def test_reasoning_none_and_empty_content() -> None:
    assert split_reasoning(None) == (None, None)
    assert split_reasoning(None, "thinking only") == (None, "thinking only")
    assert split_reasoning("") == ("", None)
    assert split_reasoning("<think>all reasoning</think>") == ("", "all reasoning")
    assert split_reasoning("<think></think>") == ("", None)


def test_reasoning_then_tool_call_pipeline() -> None:
    content = (
        "<think>I need the profile first.</think>\n"
        '<tool_call>\n{"name": "get_user_details", "arguments": {"user_id": "a"}}\n</tool_call>'
    )
    visible, reasoning = split_reasoning(content)
    assert reasoning == "I need the profile first."
    calls, remaining = recover_tool_calls(visible, TOOLS)
    assert [c.name for c in calls] == ["get_user_details"]
    assert remaining == ""


def test_a_tag_named_in_prose_is_no_call() -> None:
    text = "I will use <tool_call> tags to call tools, as the policy says."
    assert recover_tool_calls(text, TOOLS) == ([], text)
    calls, rest = recover_tool_calls('Checking. <tool_call>{"name": "get_user_de', TOOLS)
    assert calls and calls[0].error and rest == "Checking."  # cut JSON after the tag: a call
