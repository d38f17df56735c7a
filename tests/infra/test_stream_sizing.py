"""The streams the services create fit in the JetStream storage the NATS pods are given."""

import copy
import re
from typing import Any

from common.settings import BusSettings
from infra_checks import Manifest

# nats-server's size suffixes (conf parser): k/m/g are powers of 1000, kb/mb/gb of 1024.
UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def _nats_conf(objects: list[Manifest]) -> str:
    config = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["data"].get("nats.conf") is not None
    )
    return str(config["data"]["nats.conf"])


def _shared_env(objects: list[Manifest]) -> dict[str, Any]:
    config = next(
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("ticketing-config")
    )
    return dict(config["data"])


def max_file_store(conf: str) -> int:
    match = re.search(r"max_file_store:\s*(\d+)\s*([a-zA-Z]*)", conf)
    assert match, "nats.conf sets no max_file_store"
    return int(match.group(1)) * UNITS[match.group(2).lower()]


def stream_sizing_problems(objects: list[Manifest]) -> list[str]:
    env = _shared_env(objects)
    defaults = BusSettings()
    stream = int(env.get("STREAM_MAX_BYTES", defaults.stream_max_bytes))
    dead_letters = int(env.get("DEAD_LETTER_MAX_BYTES", defaults.dead_letter_max_bytes))
    available = max_file_store(_nats_conf(objects))
    # Each node holds a whole replica of every stream (R3 on three nodes).
    if stream + dead_letters > available:
        return [
            f"STREAM_MAX_BYTES {stream} + DEAD_LETTER_MAX_BYTES {dead_letters} exceed "
            f"max_file_store {available}: publishes would fail before the stream is full"
        ]
    return []


def test_the_streams_fit_in_the_nats_file_store(base_objects: list[Manifest]) -> None:
    assert stream_sizing_problems(base_objects) == []


def test_a_stream_larger_than_the_file_store_is_found(base_objects: list[Manifest]) -> None:
    broken = copy.deepcopy(base_objects)
    shared = next(
        o
        for o in broken
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("ticketing-config")
    )
    shared["data"]["STREAM_MAX_BYTES"] = str(20 * 1024**3)

    [problem] = stream_sizing_problems(broken)
    assert "exceed max_file_store" in problem
