"""The rule that tells when an order in several packages arrived (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fidele.ingest.connectors.shop import Package
from fidele.ingest.connectors.shopify import package, packages_delivered

DAY = datetime(2026, 3, 9, 12, tzinfo=UTC)


def box(name: str, lines: dict[str, int] | None, day: int | None, live: bool = True) -> Package:
    return Package(name, live, lines, DAY + timedelta(days=day) if day is not None else None)


def test_every_line_must_be_in_a_delivered_package() -> None:
    to_ship = {"a": 2, "b": 1}
    assert packages_delivered(to_ship, [box("1", {"a": 2}, 0)]) is None  # b not shipped yet
    both = [box("1", {"a": 2}, 0), box("2", {"b": 1}, 3)]
    assert packages_delivered(to_ship, both) == DAY + timedelta(days=3)
    split = [box("1", {"a": 1, "b": 1}, 1), box("2", {"a": 1}, None)]
    assert packages_delivered(to_ship, split) is None  # the second is on its way


def test_refunded_lines_and_cancelled_packages_do_not_count() -> None:
    # the caller leaves refunded quantities out of what is to ship
    assert packages_delivered({"a": 1}, [box("1", {"a": 1}, 0)]) == DAY
    gone = [box("1", {"a": 1}, 0), box("2", {"a": 1}, None, live=False)]
    assert packages_delivered({"a": 1}, gone) == DAY
    assert packages_delivered({"a": 1}, [box("1", {"a": 1}, 0, live=False)]) is None
    assert packages_delivered({"a": 1}, []) is None


def test_without_lines_the_packages_known_stand_for_the_order() -> None:
    only_events = [box("1", None, 0), box("2", None, 2)]
    assert packages_delivered({"a": 2}, only_events) == DAY + timedelta(days=2)
    assert packages_delivered({"a": 2}, [box("1", None, 0), box("2", None, None)]) is None
    # an order whose lines have no shop ids: the packages' lines cannot be matched
    assert packages_delivered(None, [box("1", {"x": 1}, 1)]) == DAY + timedelta(days=1)


def test_a_fulfillment_payload_as_a_package() -> None:
    placed = DAY - timedelta(days=5)
    f = {
        "id": 255858046,
        "status": "success",
        "shipment_status": "delivered",
        "updated_at": "2026-03-09T04:00:00-08:00",
        "line_items": [
            {"id": 1, "quantity": 1},
            {"id": 2, "quantity": 3},
            {"id": 1, "quantity": 1},
        ],
    }
    assert package(f, placed) == Package("255858046", True, {"1": 2, "2": 3}, DAY)
    assert package({**f, "status": "cancelled"}, placed).live is False
    assert package({**f, "status": "cancelled"}, placed).delivered_at is None
    assert package({**f, "shipment_status": "in_transit"}, placed).delivered_at is None
    assert package({k: v for k, v in f.items() if k != "line_items"}, placed).lines is None


boxes = st.lists(
    st.builds(
        box,
        st.sampled_from("123456"),
        st.one_of(st.none(), st.dictionaries(st.sampled_from("abc"), st.integers(1, 3))),
        st.one_of(st.none(), st.integers(0, 30)),
        st.booleans(),
    ),
    max_size=6,
)
to_ship = st.one_of(st.none(), st.dictionaries(st.sampled_from("abc"), st.integers(1, 4)))


@given(to_ship, boxes)
def test_the_order_arrives_with_its_last_live_package_whatever_their_order(
    need: dict[str, int] | None, packages: list[Package]
) -> None:
    when = packages_delivered(need, packages)
    assert packages_delivered(need, packages[::-1]) == when
    live = [p for p in packages if p.live]
    if when is not None:
        assert live and all(p.delivered_at is not None for p in live)
        assert when == max(p.delivered_at for p in live if p.delivered_at is not None)
    # one more package still on its way always holds the order back
    assert packages_delivered(need, [*packages, box("7", None, None)]) is None
