"""Kubernetes leaves each service the time its bounded shutdown needs (common.shutdown)."""

import copy
from typing import Any

from common.shutdown import WATCHDOG_GRACE_SECONDS
from devserver.routing import SERVICES
from infra_checks import Manifest, container_env, find, main_container, pod_spec, settings_class


def shutdown_problems(objects: list[Manifest]) -> list[str]:
    """A Deployment whose grace period is shorter than its preStop sleep plus the service's
    shutdown budget (SHUTDOWN_SECONDS as the container sets it, else the default) plus the
    watchdog's grace: Kubernetes would kill it mid-shutdown."""
    problems = []
    for service in SERVICES:
        deployment = find(objects, "Deployment", service.name)
        if deployment is None:
            problems.append(f"{service.name}: no Deployment")
            continue
        container = main_container(deployment)
        pre_stop = container.get("lifecycle", {}).get("preStop", {})
        sleep = float(pre_stop.get("sleep", {}).get("seconds", 0))
        env = container_env(container, objects)
        set_budget = env.get("SHUTDOWN_SECONDS")
        settings: Any = settings_class(service.name)
        budget = (
            float(set_budget.value)
            if set_budget is not None and set_budget.value is not None
            else settings.model_fields["shutdown_seconds"].default
        )
        needed = sleep + budget + WATCHDOG_GRACE_SECONDS
        grace = pod_spec(deployment).get("terminationGracePeriodSeconds", 30)
        if grace < needed:
            problems.append(
                f"{service.name}: terminationGracePeriodSeconds {grace} < preStop {sleep:g} s + "
                f"SHUTDOWN_SECONDS {budget:g} s + watchdog {WATCHDOG_GRACE_SECONDS:g} s"
            )
    return problems


def test_every_service_has_time_for_its_bounded_shutdown(base_objects: list[Manifest]) -> None:
    assert shutdown_problems(base_objects) == []


def test_a_grace_period_shorter_than_the_shutdown_is_found(base_objects: list[Manifest]) -> None:
    broken = copy.deepcopy(base_objects)
    orders = find(broken, "Deployment", "orders")
    assert orders is not None
    pod_spec(orders)["terminationGracePeriodSeconds"] = 10

    assert shutdown_problems(broken) == [
        "orders: terminationGracePeriodSeconds 10 < preStop 5 s + SHUTDOWN_SECONDS 7 s + "
        "watchdog 1 s"
    ]


def test_a_larger_budget_set_on_a_deployment_is_counted(base_objects: list[Manifest]) -> None:
    broken = copy.deepcopy(base_objects)
    payments = find(broken, "Deployment", "payments")
    assert payments is not None
    main_container(payments).setdefault("env", []).append(
        {"name": "SHUTDOWN_SECONDS", "value": "20"}
    )

    assert shutdown_problems(broken) == [
        "payments: terminationGracePeriodSeconds 15 < preStop 5 s + SHUTDOWN_SECONDS 20 s + "
        "watchdog 1 s"
    ]
