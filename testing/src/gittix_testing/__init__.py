"""Test support for every service: real NATS, clean databases, signed sessions, event asserts."""

from gittix_testing.app import http_client, running
from gittix_testing.bus import EventRecorder, TestBus
from gittix_testing.processes import ManagedProcess, free_port, start_localstripe, start_nats_server
from gittix_testing.waiting import wait_until, wait_until_sync, within

__all__ = [
    "EventRecorder",
    "ManagedProcess",
    "TestBus",
    "free_port",
    "http_client",
    "running",
    "start_localstripe",
    "start_nats_server",
    "wait_until",
    "wait_until_sync",
    "within",
]
