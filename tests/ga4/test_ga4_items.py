"""tagserver.ga4.items: ``pr1..prN`` → ``items[]``."""

from __future__ import annotations

from tagserver.ga4.items import ITEM_NUMBER_KEYS, ITEM_TEXT_KEYS, collect_items, parse_item


def test_every_item_key_of_the_protocol() -> None:
    text = "~".join(
        [f"{code}{name.upper()}" for code, name in ITEM_TEXT_KEYS.items()]
        + ["pr10.01", "qt3", "ds2.22", "lp0"]
    )
    item, problems = parse_item(text)
    assert problems == []
    assert item == {
        **{name: name.upper() for name in ITEM_TEXT_KEYS.values()},
        "price": 10.01,
        "quantity": 3,
        "discount": 2.22,
        "index": 0,
    }
    assert set(ITEM_NUMBER_KEYS.values()) == {"price", "quantity", "discount", "index"}


def test_custom_item_parameters_come_in_k_v_pairs() -> None:
    item, problems = parse_item("idA~k0size~v0XL~k1color~v1red")
    assert problems == []
    assert item == {"item_id": "A", "size": "XL", "color": "red"}


def test_incomplete_custom_pairs_are_reported_not_fatal() -> None:
    item, problems = parse_item("idA~k0size~v1red~k2~v2x")
    assert item == {"item_id": "A"}
    assert len(problems) == 3


def test_unknown_two_letter_keys_are_kept_under_their_code() -> None:
    item, problems = parse_item("idA~zzfoo")
    assert item == {"item_id": "A", "zz": "foo"}
    assert problems == []


def test_garbage_fields_are_left_out_with_a_problem() -> None:
    item, problems = parse_item("idA~x~prabc~qt1,5~~nmTee")
    assert item == {"item_id": "A", "item_name": "Tee"}
    assert len(problems) == 3


def test_the_first_of_a_repeated_key_wins() -> None:
    item, _ = parse_item("idA~idB~pr1~pr2")
    assert item == {"item_id": "A", "price": 1}


def test_items_are_ordered_by_index_not_by_position() -> None:
    items, problems = collect_items(
        [("pr10", "idJ"), ("v", "2"), ("pr2", "idB"), ("pr1", "idA")]
    )
    assert [i["item_id"] for i in items] == ["A", "B", "J"]
    assert problems == []


def test_bad_indexes_and_empty_items_are_reported() -> None:
    items, problems = collect_items(
        [("pr0", "idZ"), ("pr201", "idY"), ("pr1", "idA"), ("pr1", "idDup"), ("pr3", "")]
    )
    assert items == [{"item_id": "A"}]
    assert len(problems) == 4


def test_non_item_parameters_are_ignored() -> None:
    items, problems = collect_items([("prx", "idA"), ("pr", "idB"), ("ep.pr1", "idC")])
    assert items == [] and problems == []
