"""An in-memory MongoDB for tests, in a process of its own: python -m gittix_testing.mongo_server.

Services reach it with the real PyMongo client (MONGO_URL=mongodb://127.0.0.1:<port>/), and it
keeps every database in mongomock, the same engine as the embedded store. What it adds over the
embedded store: the data lives outside the services, so a service killed with SIGKILL and started
again finds its database as it left it, as it would with a real MongoDB. The fault-injection
suite needs exactly that (this machine has no mongod).

It speaks the part of the wire protocol PyMongo uses for the commands the services and the
suites (MONGO_URL=... make test, each test in a database of its own) send: the handshake
(OP_QUERY or OP_MSG), find, insert, update, delete, findAndModify, aggregate, createIndexes,
listIndexes, drop, listDatabases, dropDatabase, ping (and gittixCommandCounts, its own: how many
of each command it has run per database). Each command runs to completion before the
next starts (one event loop, mongomock is synchronous), so a single-document write is atomic,
as on MongoDB. Anything else is answered with MongoDB's "no such command", never silently
ignored.
"""

import argparse
import asyncio
import itertools
import logging
import struct
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import bson
import mongomock
from bson.codec_options import CodecOptions
from common.embedded_store import install as install_embedded_store
from pymongo import ReturnDocument

log = logging.getLogger("gittix_testing.mongo_server")

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
CHECKSUM_PRESENT = 1
MAX_WIRE_VERSION = 21  # MongoDB 7.0: what PyMongo 4.x expects of a server
DUPLICATE_KEY = 11000
COMMAND_NOT_FOUND = 59
COUNTS_COMMAND = "gittixCommandCounts"
# Dates come back as stored: naive UTC inside, UTC on the wire.
CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=False)

Reply = dict[str, Any]


def _error(message: str, code: int) -> Reply:
    return {"ok": 0.0, "errmsg": message, "code": code}


def _code(error: Exception) -> int:
    return int(getattr(error, "code", None) or 1)


class Store:
    """The databases, and the commands on them."""

    def __init__(self) -> None:
        install_embedded_store()  # the embedded store's lookups by _id, as make up has them
        self.client: mongomock.MongoClient = mongomock.MongoClient()
        self._connections = itertools.count(1)
        # (database, command) -> how many: what bench/bench_footprint.py reads per order.
        self.counts: Counter[tuple[str, str]] = Counter()
        self.commands: dict[str, Callable[[Any, Reply], Reply]] = {
            "find": self.find,
            "insert": self.insert,
            "update": self.update,
            "delete": self.delete,
            "findandmodify": self.find_and_modify,
            "createindexes": self.create_indexes,
            "drop": self.drop,
            "count": self.count,
            "aggregate": self.aggregate,
            "listindexes": self.list_indexes,
        }

    def hello(self) -> Reply:
        return {
            "helloOk": True,
            "ismaster": True,
            "isWritablePrimary": True,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000,
            "localTime": datetime.now(UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": next(self._connections),
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
            "ok": 1.0,
        }

    def run(self, body: Reply) -> Reply:
        name = next(iter(body))
        lowered = name.lower()
        if lowered in ("hello", "ismaster"):
            return self.hello()
        if lowered in ("ping", "endsessions"):
            return {"ok": 1.0}
        if lowered == "buildinfo":
            return {"version": "7.0.0", "versionArray": [7, 0, 0, 0], "ok": 1.0}
        if lowered == "killcursors":
            return {"cursorsKilled": [], "cursorsNotFound": body.get("cursors", []), "ok": 1.0}
        if lowered == COUNTS_COMMAND.lower():
            # Not MongoDB's: the commands this server has run, per database (for benchmarks).
            counted = [{"db": db, "command": c, "n": n} for (db, c), n in self.counts.items()]
            return {"counts": counted, "ok": 1.0}
        self.counts[(body.get("$db", "test"), lowered)] += 1
        if lowered == "listdatabases":
            names = self.client.list_database_names()
            return {"databases": [{"name": n, "empty": False} for n in names], "ok": 1.0}
        if lowered == "dropdatabase":
            # A test's own database, dropped at its teardown (gittix_testing.plugin).
            self.client.drop_database(body.get("$db", "test"))
            return {"ok": 1.0}
        command = self.commands.get(lowered)
        if command is None:
            return _error(f"no such command: '{name}'", COMMAND_NOT_FOUND)
        collection = self.client[body.get("$db", "test")][body[name]]
        try:
            return command(collection, body)
        except Exception as error:  # a command error, not a broken connection
            return _error(str(error), _code(error))

    def find(self, collection: Any, body: Reply) -> Reply:
        cursor = collection.find(body.get("filter") or {}, body.get("projection"))
        if body.get("sort"):
            cursor = cursor.sort(list(body["sort"].items()))
        if body.get("skip"):
            cursor = cursor.skip(body["skip"])
        if body.get("limit"):
            cursor = cursor.limit(abs(body["limit"]))
        namespace = f"{collection.database.name}.{collection.name}"
        return {"cursor": {"firstBatch": list(cursor), "id": 0, "ns": namespace}, "ok": 1.0}

    def aggregate(self, collection: Any, body: Reply) -> Reply:
        # PyMongo's count_documents is an aggregate ($match, $skip, $limit, $group).
        found = list(collection.aggregate(body.get("pipeline") or []))
        namespace = f"{collection.database.name}.{collection.name}"
        return {"cursor": {"firstBatch": found, "id": 0, "ns": namespace}, "ok": 1.0}

    def list_indexes(self, collection: Any, body: Reply) -> Reply:
        specs = []
        for name, info in collection.index_information().items():
            spec = {"v": 2, "key": dict(info["key"]), "name": name}
            spec.update({k: v for k, v in info.items() if k not in ("key", "v", "ns")})
            specs.append(spec)
        namespace = f"{collection.database.name}.{collection.name}"
        return {"cursor": {"firstBatch": specs, "id": 0, "ns": namespace}, "ok": 1.0}

    def count(self, collection: Any, body: Reply) -> Reply:
        return {"n": collection.count_documents(body.get("query") or {}), "ok": 1.0}

    def insert(self, collection: Any, body: Reply) -> Reply:
        inserted, errors = 0, []
        for index, document in enumerate(body.get("documents", [])):
            try:
                collection.insert_one(document)
                inserted += 1
            except Exception as error:
                errors.append({"index": index, "code": _code(error), "errmsg": str(error)})
                if body.get("ordered", True):
                    break
        reply: Reply = {"n": inserted, "ok": 1.0}
        if errors:
            reply["writeErrors"] = errors
        return reply

    def update(self, collection: Any, body: Reply) -> Reply:
        matched = modified = 0
        upserted: list[Reply] = []
        errors = []
        for index, spec in enumerate(body.get("updates", [])):
            apply = collection.update_many if spec.get("multi") else collection.update_one
            options = {"upsert": bool(spec.get("upsert"))}
            if spec.get("arrayFilters"):
                options["array_filters"] = spec["arrayFilters"]
            try:
                result = apply(spec["q"], spec["u"], **options)
            except Exception as error:
                errors.append({"index": index, "code": _code(error), "errmsg": str(error)})
                if body.get("ordered", True):
                    break
                continue
            if result.upserted_id is not None:
                upserted.append({"index": index, "_id": result.upserted_id})
            matched += result.matched_count
            modified += result.modified_count
        reply: Reply = {"n": matched + len(upserted), "nModified": modified, "ok": 1.0}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
        return reply

    def delete(self, collection: Any, body: Reply) -> Reply:
        deleted = 0
        for spec in body.get("deletes", []):
            remove = collection.delete_one if spec.get("limit") == 1 else collection.delete_many
            deleted += remove(spec["q"]).deleted_count
        return {"n": deleted, "ok": 1.0}

    def find_and_modify(self, collection: Any, body: Reply) -> Reply:
        query = body.get("query") or {}
        sort = list(body["sort"].items()) if body.get("sort") else None
        fields = body.get("fields")
        if body.get("remove"):
            value = collection.find_one_and_delete(query, projection=fields, sort=sort)
            return {"lastErrorObject": {"n": int(value is not None)}, "value": value, "ok": 1.0}
        existed = collection.find_one(query, {"_id": 1}, sort=sort) is not None
        value = collection.find_one_and_update(
            query,
            body["update"],
            projection=fields,
            sort=sort,
            upsert=bool(body.get("upsert")),
            return_document=ReturnDocument.AFTER if body.get("new") else ReturnDocument.BEFORE,
        )
        changed = existed or bool(body.get("upsert"))
        last: Reply = {"n": int(changed), "updatedExisting": existed}
        return {"lastErrorObject": last, "value": value, "ok": 1.0}

    def create_indexes(self, collection: Any, body: Reply) -> Reply:
        existing = collection.index_information()
        before = len(existing)
        for spec in body.get("indexes", []):
            if spec.get("name") in existing:
                # As on MongoDB, asking again for an index that exists changes nothing
                # (mongomock would re-check uniqueness ignoring a partial filter).
                continue
            options = {key: value for key, value in spec.items() if key not in ("key", "v")}
            collection.create_index(list(spec["key"].items()), **options)
        after = len(collection.index_information())
        return {"numIndexesBefore": before, "numIndexesAfter": after, "ok": 1.0}

    def drop(self, collection: Any, body: Reply) -> Reply:
        collection.drop()
        return {"ok": 1.0}


def _message(request_id: int, response_to: int, opcode: int, payload: bytes) -> bytes:
    return struct.pack("<iiii", 16 + len(payload), request_id, response_to, opcode) + payload


def _parse_op_msg(payload: bytes) -> Reply:
    (flags,) = struct.unpack_from("<I", payload)
    end = len(payload) - (4 if flags & CHECKSUM_PRESENT else 0)
    position = 4
    body: Reply = {}
    sequences: dict[str, list[Reply]] = {}
    while position < end:
        kind = payload[position]
        position += 1
        (size,) = struct.unpack_from("<i", payload, position)
        if kind == 0:
            body = bson.decode(payload[position : position + size], codec_options=CODEC)
        else:
            section_end = position + size
            name_end = payload.index(b"\x00", position + 4)
            name = payload[position + 4 : name_end].decode()
            sequences[name] = bson.decode_all(payload[name_end + 1 : section_end], CODEC)
        position += size
    body.update(sequences)
    return body


def _parse_op_query(payload: bytes) -> Reply:
    name_end = payload.index(b"\x00", 4)
    position = name_end + 1 + 8  # numberToSkip, numberToReturn
    (size,) = struct.unpack_from("<i", payload, position)
    query: Reply = bson.decode(payload[position : position + size], codec_options=CODEC)
    # A wrapped query ({$query: {...}}) carries the command inside.
    return query.get("$query", query) if "$query" in query else query


async def serve_connection(
    store: Store, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    request_ids = itertools.count(1)
    try:
        while True:
            header = await reader.readexactly(16)
            length, request_id, _, opcode = struct.unpack("<iiii", header)
            payload = await reader.readexactly(length - 16)
            if opcode == OP_MSG:
                reply = store.run(_parse_op_msg(payload))
                out = struct.pack("<I", 0) + b"\x00" + bson.encode(reply)
                writer.write(_message(next(request_ids), request_id, OP_MSG, out))
            elif opcode == OP_QUERY:
                reply = store.run(_parse_op_query(payload))
                out = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(reply)
                writer.write(_message(next(request_ids), request_id, OP_REPLY, out))
            else:
                log.warning("closing a connection that sent opcode %d", opcode)
                return
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the client went away
    finally:
        writer.close()


async def serve(host: str, port: int) -> None:
    store = Store()
    server = await asyncio.start_server(
        lambda reader, writer: serve_connection(store, reader, writer), host, port
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gittix_testing.mongo_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
