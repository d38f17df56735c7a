"""The consistency checker's rules (devserver.verify.compare), each shown finding what it is for.

A consistent state is built once (a user, two tickets, a paid order, a cancelled and refunded
one, an open one); each test breaks one thing and reads what the checker says. The checker
against a running system is exercised by e2e/test_faults.py.
"""

import copy
from typing import Any

import pytest
from devserver.verify import DATA_SERVICES, StripeLedger, SystemState, compare, main

USER = "u1"
DIGEST = "d" * 64


def consistent() -> dict[str, Any]:
    tickets = [
        {
            "_id": "t1",
            "title": "Cup final",
            "price_cents": 1000,
            "user_id": "s1",
            "order_id": "o1",
            "sold": True,
            "version": 1,
            "outbox_pending": 0,
        },
        {
            "_id": "t2",
            "title": "Opera",
            "price_cents": 2000,
            "user_id": "s1",
            "order_id": "o3",
            "sold": None,
            "version": 3,
            "outbox_pending": 0,
        },
    ]
    orders = [
        {
            "_id": "o1",
            "user_id": USER,
            "status": "completed",
            "active": True,
            "ticket_id": "t1",
            "ticket": {"title": "Cup final", "price_cents": 1000},
            "version": 2,
            "outbox_pending": 0,
        },
        {
            "_id": "o2",
            "user_id": USER,
            "status": "cancelled",
            "active": False,
            "ticket_id": "t2",
            "ticket": {"title": "Opera", "price_cents": 2000},
            "version": 2,
            "outbox_pending": 0,
        },
        {
            "_id": "o3",
            "user_id": USER,
            "status": "created",
            "active": True,
            "ticket_id": "t2",
            "ticket": {"title": "Opera", "price_cents": 2000},
            "version": 0,
            "outbox_pending": 0,
        },
    ]
    return {
        "auth": {"users": [{"_id": USER, "email_sha256": DIGEST, "version": 0}]},
        "tickets": {"tickets": tickets},
        "orders": {
            "orders": orders,
            "tickets": [
                {k: v for k, v in ticket.items() if k != "outbox_pending"} for ticket in tickets
            ],
        },
        "payments": {
            "users": [{"_id": USER, "email_sha256": DIGEST, "version": 0}],
            "orders": [
                {
                    "_id": o["_id"],
                    "version": o["version"],
                    "status": o["status"],
                    "user_id": o["user_id"],
                    "ticket_id": o["ticket_id"],
                    "amount": o["ticket"]["price_cents"],
                }
                for o in orders
            ],
            "charges": [
                {
                    "_id": "c1",
                    "order_id": "o1",
                    "status": "completed",
                    "live": True,
                    "amount": 1000,
                    "stripe_id": "pi_1",
                    "stripe_refund_id": None,
                    "refund_due": None,
                    "version": 1,
                    "outbox_pending": 0,
                },
                {
                    "_id": "c2",
                    "order_id": "o2",
                    "status": "completed",
                    "live": True,
                    "amount": 2000,
                    "stripe_id": "pi_2",
                    "stripe_refund_id": "re_2",
                    "refund_due": None,
                    "version": 2,
                    "outbox_pending": 0,
                },
            ],
        },
        "expiration": {
            "expirations": [
                {"_id": "o1", "state": "dropped", "outbox_pending": 0},
                {"_id": "o2", "state": "fired", "outbox_pending": 0},
                {"_id": "o3", "state": "pending", "outbox_pending": 0},
            ]
        },
    }


def details(snapshots: dict[str, Any], dead_letters: int = 0) -> list[str]:
    report = compare(SystemState(snapshots=snapshots, dead_letters=dead_letters))
    return [str(d) for d in report.differences + report.double_sales]


def find(snapshots: dict[str, Any], service: str, collection: str, key: str) -> dict[str, Any]:
    return next(d for d in snapshots[service][collection] if d["_id"] == key)


def test_a_consistent_system_is_clean() -> None:
    report = compare(SystemState(snapshots=consistent(), dead_letters=0))
    assert report.clean, report.render()
    assert "OK" in report.render()


def test_a_stale_ticket_replica_is_reported_with_both_values() -> None:
    state = consistent()
    find(state, "orders", "tickets", "t1").update(price_cents=900, version=0)
    assert details(state) == [
        "orders' tickets replica: ticket t1: price_cents is 900 in orders' replica, "
        "1000 in tickets",
        "orders' tickets replica: ticket t1: version is 0 in orders' replica, 1 in tickets",
    ]


def test_a_ticket_missing_from_a_replica_or_only_in_it_is_reported() -> None:
    state = consistent()
    state["orders"]["tickets"] = [t for t in state["orders"]["tickets"] if t["_id"] != "t2"]
    state["orders"]["tickets"].append({**find(state, "orders", "tickets", "t1"), "_id": "t9"})
    assert details(state) == [
        "orders' tickets replica: ticket t2: missing in orders' replica",
        "orders' tickets replica: ticket t9: in orders' replica, not in tickets",
    ]


def test_payments_replicas_of_orders_and_users_are_compared() -> None:
    state = consistent()
    find(state, "payments", "orders", "o3").update(status="cancelled", version=1)
    find(state, "payments", "users", USER)["email_sha256"] = "e" * 64
    found = details(state)
    assert (
        "payments' orders replica: order o3: status is 'cancelled' in payments' replica, "
        "'created' in orders" in found
    )
    assert any(line.startswith("payments' users replica: user u1: email_sha256") for line in found)


def test_a_ticket_not_held_by_its_active_order_is_reported() -> None:
    state = consistent()
    find(state, "tickets", "tickets", "t2")["order_id"] = None
    find(state, "orders", "tickets", "t2")["order_id"] = None
    assert details(state) == [
        "reservations: ticket t2: held by None in tickets, by 'o3' in orders (its active order)"
    ]


def test_a_ticket_sold_unless_its_order_is_completed_is_reported() -> None:
    state = consistent()
    find(state, "tickets", "tickets", "t1")["sold"] = None
    find(state, "tickets", "tickets", "t2")["sold"] = True
    assert details(state) == [
        "sales: ticket t1: not sold in tickets, its order 'o1' completed in orders",
        "sales: ticket t2: sold in tickets, its order 'o3' not completed in orders",
    ]


def test_a_ticket_in_two_completed_or_active_orders_is_a_double_sale() -> None:
    state = consistent()
    find(state, "orders", "orders", "o3")["ticket_id"] = "t1"
    find(state, "payments", "orders", "o3")["ticket_id"] = "t1"
    report = compare(SystemState(snapshots=state, dead_letters=0))
    assert [str(d) for d in report.double_sales] == [
        "double sale: ticket t1: in 2 active orders: ['o1', 'o3']"
    ]
    assert not report.clean


def test_timers_must_be_pending_exactly_while_the_order_is_open() -> None:
    state = consistent()
    find(state, "expiration", "expirations", "o1")["state"] = "pending"
    state["expiration"]["expirations"] = [
        t for t in state["expiration"]["expirations"] if t["_id"] != "o3"
    ] + [find(state, "expiration", "expirations", "o1")]
    assert details(state) == [
        "expiration timers: order o1: completed, timer still pending",
        "expiration timers: order o3: created in orders, timer missing",
    ]


def test_money_kept_for_a_cancelled_order_without_refund_is_reported() -> None:
    state = consistent()
    find(state, "payments", "charges", "c2")["stripe_refund_id"] = None
    assert details(state) == ["charges: charge c2 (order o2): money kept, order cancelled"]


def test_a_completed_order_without_its_charge_is_reported() -> None:
    state = consistent()
    find(state, "payments", "charges", "c1").update(status="failed", live=None)
    assert details(state) == ["charges: order o1: completed with 0 completed charge(s)"]


def test_unresolved_attempts_owed_refunds_and_unknown_orders_are_reported() -> None:
    state = consistent()
    charges = state["payments"]["charges"]
    charges.append(
        {
            **copy.deepcopy(charges[0]),
            "_id": "c3",
            "order_id": "o3",
            "status": "created",
            "stripe_id": None,
        }
    )
    charges.append(
        {**copy.deepcopy(charges[1]), "_id": "c4", "stripe_refund_id": None, "refund_due": True}
    )
    charges.append({**copy.deepcopy(charges[0]), "_id": "c5", "order_id": "o9"})
    assert details(state) == [
        "charges: charge c3 (order o3): attempt unresolved (still created)",
        "charges: charge c4 (order o2): refund owed, not made yet",
        "charges: charge c4 (order o2): money kept, order cancelled",
        "charges: charge c5 (order o9): completed, for an order orders does not have",
    ]


def test_unpublished_outbox_entries_and_dead_letters_are_reported() -> None:
    state = consistent()
    find(state, "tickets", "tickets", "t1")["outbox_pending"] = 2
    report = compare(SystemState(snapshots=state, dead_letters=3))
    assert [str(d) for d in report.differences] == [
        "outbox: tickets.tickets: 2 event(s) written but not yet published"
    ]
    assert report.dead_letters == 3
    assert "dead letters: 3" in report.render()
    assert not report.clean


def test_the_command_says_when_it_cannot_read_the_system(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Nothing listens on port 9 of the loopback: every read is refused.
    args = [f"--service={name}=http://127.0.0.1:9" for name in DATA_SERVICES]
    assert main([*args, "--nats-url", "nats://127.0.0.1:9"]) == 2
    assert "cannot read the system" in capsys.readouterr().err


def stripe_side() -> StripeLedger:
    return StripeLedger(
        payment_intents={
            "pi_1": {"status": "succeeded", "amount": 1000},
            "pi_2": {"status": "succeeded", "amount": 2000},
            "pi_3": {"status": "requires_payment_method", "amount": 500},  # declined
        },
        refunds={"re_2": "pi_2"},
    )


def stripe_details(ledger: StripeLedger) -> list[str]:
    report = compare(SystemState(snapshots=consistent(), dead_letters=0, stripe=ledger))
    return [str(d) for d in report.differences]


def test_stripe_agreeing_with_the_charges_is_clean() -> None:
    assert stripe_details(stripe_side()) == []


def test_money_taken_at_stripe_that_no_charge_records_is_reported() -> None:
    ledger = stripe_side()
    ledger.payment_intents["pi_9"] = {"status": "succeeded", "amount": 700}
    assert stripe_details(ledger) == [
        "stripe: PaymentIntent pi_9: 700 taken at Stripe, recorded by 0 charge(s)"
    ]


def test_a_charge_stripe_does_not_know_or_a_double_refund_is_reported() -> None:
    ledger = stripe_side()
    del ledger.payment_intents["pi_1"]
    ledger.refunds["re_3"] = "pi_2"
    assert stripe_details(ledger) == [
        "stripe: charge c1 (pi_1): Stripe has no such PaymentIntent",
        "stripe: PaymentIntent pi_2: refunded 2 times",
        "stripe: refund re_3: of pi_2, recorded by no charge",
    ]
