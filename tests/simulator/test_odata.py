"""Unit tests of the query-option machinery and of Graph's date/duration formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.simulator import odata
from app.simulator.errors import GraphError
from app.simulator.timefmt import format_datetime, format_duration, parse_datetime, parse_duration


class TestFilterParsing:
    def test_equality_and_conjunction(self) -> None:
        node = odata.parse_filter("principalId eq 'A' and roleDefinitionId ne 'b'")
        assert odata.evaluate(node, {"principalId": "a", "roleDefinitionId": "c"})
        assert not odata.evaluate(node, {"principalId": "a", "roleDefinitionId": "B"})

    def test_in_list_and_or_with_parentheses(self) -> None:
        node = odata.parse_filter("(id in ('1', '2')) or displayName eq 'x'")
        assert odata.evaluate(node, {"id": "2", "displayName": "y"})
        assert odata.evaluate(node, {"id": "9", "displayName": "X"})
        assert not odata.evaluate(node, {"id": "9", "displayName": "z"})

    def test_quotes_escape_by_doubling(self) -> None:
        node = odata.parse_filter("displayName eq 'O''Brien'")
        assert odata.evaluate(node, {"displayName": "O'Brien"})

    def test_null_bool_and_datetime_literals(self) -> None:
        node = odata.parse_filter(
            "appScopeId eq null and isBuiltIn eq true and activityDateTime ge 2024-01-01T00:00:00Z"
        )
        record = {"appScopeId": None, "isBuiltIn": True, "activityDateTime": "2024-02-01T10:00:00Z"}
        assert odata.evaluate(node, record)
        record["activityDateTime"] = "2023-12-31T23:59:59Z"
        assert not odata.evaluate(node, record)

    def test_lambda_over_a_collection(self) -> None:
        node = odata.parse_filter("targetResources/any(t: t/id eq 'abc')")
        assert odata.evaluate(node, {"targetResources": [{"id": "x"}, {"id": "ABC"}]})
        assert not odata.evaluate(node, {"targetResources": [{"id": "x"}]})

    def test_startswith(self) -> None:
        node = odata.parse_filter("startswith(userPrincipalName,'adele')")
        assert odata.evaluate(node, {"userPrincipalName": "Adele.V@contoso.com"})

    def test_nested_path(self) -> None:
        node = odata.parse_filter("initiatedBy/user/id eq '00000000-0000-0000-0000-000000000000'")
        assert odata.evaluate(
            node, {"initiatedBy": {"user": {"id": "00000000-0000-0000-0000-000000000000"}}}
        )

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "principalId eq",
            "principalId == 'a'",
            "(principalId eq 'a'",
            "foo('a')",
            "id in 'a'",
        ],
    )
    def test_malformed_filters_are_400(self, text: str) -> None:
        with pytest.raises(GraphError) as caught:
            odata.parse_filter(text)
        assert caught.value.status == 400


class TestFilterSpec:
    spec = odata.spec(
        {"principalId": ("eq", "ne"), "targetResources": ("any",), "targetResources/id": ("eq",)}
    )

    def test_unknown_property_is_refused(self) -> None:
        with pytest.raises(GraphError, match="not supported in \\$filter"):
            self.spec.check(odata.parse_filter("colour eq 'red'"))

    def test_unsupported_operator_is_refused(self) -> None:
        with pytest.raises(GraphError, match="operator 'in'"):
            self.spec.check(odata.parse_filter("principalId in ('a')"))

    def test_lambda_body_properties_are_checked(self) -> None:
        self.spec.check(odata.parse_filter("targetResources/any(t: t/id eq 'a')"))
        with pytest.raises(GraphError):
            self.spec.check(odata.parse_filter("targetResources/any(t: t/type eq 'a')"))

    def test_not_is_refused(self) -> None:
        with pytest.raises(GraphError):
            self.spec.check(odata.parse_filter("not principalId eq 'a'"))

    def test_equality_values_feed_the_indexes(self) -> None:
        node = odata.parse_filter("principalId eq 'A' and roleDefinitionId in ('x','Y')")
        assert odata.equality_values(node, "principalId") == {"a"}
        assert odata.equality_values(node, "roleDefinitionId") == {"x", "y"}
        assert (
            odata.equality_values(odata.parse_filter("principalId ne 'a'"), "principalId") is None
        )


class TestSelectExpandTop:
    def test_expand_with_nested_options(self) -> None:
        expands = odata.parse_expand("policy($expand=rules),principal($select=id)")
        assert [e.name for e in expands] == ["policy", "principal"]
        assert expands[0].options == {"$expand": "rules"}
        assert expands[1].options == {"$select": "id"}

    def test_select_keeps_annotations_and_named_properties(self) -> None:
        item = {"@odata.type": "#microsoft.graph.user", "id": "1", "displayName": "A", "mail": None}
        assert odata.apply_select(item, ["displayname"], item, "user") == {
            "@odata.type": "#microsoft.graph.user",
            "displayName": "A",
        }

    def test_select_of_unknown_property_is_400(self) -> None:
        with pytest.raises(GraphError, match="Could not find a property named 'colour'"):
            odata.apply_select({"id": "1"}, ["colour"], ["id"], "microsoft.graph.user")

    @pytest.mark.parametrize("value", ["0", "1000", "ten"])
    def test_top_out_of_range_is_400(self, value: str) -> None:
        with pytest.raises(GraphError):
            odata.parse_top(value)


class TestPaging:
    def test_pages_cover_every_item_once_even_when_items_are_added(self) -> None:
        items = list(range(10))
        first, token = odata.page(items, lambda i: i, skiptoken=None, size=4)
        assert first == [0, 1, 2, 3]
        assert token
        items.insert(0, -1)  # added before the cursor: must not shift the next page
        second, token = odata.page(items, lambda i: i, skiptoken=token, size=4)
        assert second == [4, 5, 6, 7]
        third, token = odata.page(items, lambda i: i, skiptoken=token, size=4)
        assert third == [8, 9]
        assert token is None

    def test_garbage_token_is_400(self) -> None:
        with pytest.raises(GraphError):
            odata.page([1], lambda i: i, skiptoken="%%%", size=1)


class TestTimeFormats:
    def test_seven_digit_fractions_and_offsets_parse(self) -> None:
        assert parse_datetime("2022-04-11T11:50:05.9999343Z") == datetime(
            2022, 4, 11, 11, 50, 5, 999934, tzinfo=UTC
        )
        assert parse_datetime("2024-01-01T01:00:00+01:00") == datetime(2024, 1, 1, tzinfo=UTC)

    def test_datetime_output_matches_graph_pattern(self) -> None:
        assert format_datetime(datetime(2024, 4, 10, tzinfo=UTC)) == "2024-04-10T00:00:00Z"
        assert format_datetime(datetime(2024, 4, 10, 1, 2, 3, 4, tzinfo=UTC)).endswith(".000004Z")

    @pytest.mark.parametrize(
        ("text", "delta"),
        [
            ("PT8H", timedelta(hours=8)),
            ("P365D", timedelta(days=365)),
            ("PT1H45M", timedelta(hours=1, minutes=45)),
            ("P1DT2H", timedelta(days=1, hours=2)),
            ("PT30S", timedelta(seconds=30)),
        ],
    )
    def test_durations_round_trip(self, text: str, delta: timedelta) -> None:
        assert parse_duration(text) == delta
        assert format_duration(delta) == text

    @pytest.mark.parametrize("text", ["P1Y", "PT", "8 hours", "P1W"])
    def test_durations_outside_graphs_pattern_are_refused(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_duration(text)
