"""Two changes to moto, for the local stack only: item writes as atomic as DynamoDB's, and a
cheaper rollback for TransactWriteItems.

DynamoDB applies a conditional write (and a whole transaction) atomically. moto's server checks the
condition, then writes, on whichever request thread serves the call, so two leases taken at once
could both succeed, a race that is moto's, not adsauth's. One reentrant lock around the backend's
item writes and transactions gives the local stack DynamoDB's atomicity (``ATOMIC_OPERATIONS``).

moto backs a transaction up by deep-copying every table it touches, once per item of the
transaction, so each one costs time proportional to the whole table. adsauth makes every lifecycle
transition a transaction (``adsauth.lifecycle``), and a test session's table grows to thousands of
items: late in the session a callback's three transactions took seconds each, past the test
browser's timeout. DynamoDB itself does nothing of the kind. This keeps moto's own transaction code
(conditions, the one-operation-per-item rule, the cancellation reasons) and only replaces the
backup: the items the transaction names are saved before it runs and put back if it is cancelled.
"""

from __future__ import annotations

import copy
import threading
import types
from typing import Any

_applied = False
_lock = threading.Lock()
# Reentrant: a cancelled transaction puts its saved items back with put_item under it.
_writes = threading.RLock()
ATOMIC_OPERATIONS = ("put_item", "update_item", "delete_item", "transact_write_items")  # BatchWriteItem: per item


def _keep_tables(real_copy: types.ModuleType, table_type: type) -> types.ModuleType:
    """A stand-in for the ``copy`` module inside moto's DynamoDB models: a table is "copied" as
    itself (the items it holds are saved one by one instead); everything else really is copied."""
    shim = types.ModuleType("copy")
    shim.__dict__.update(real_copy.__dict__)
    shim.deepcopy = lambda value, memo=None: value if isinstance(value, table_type) else real_copy.deepcopy(value, memo)
    return shim


def apply() -> None:
    global _applied
    with _lock:
        if _applied:
            return
        from moto.dynamodb import models
        from moto.dynamodb.models.table import Table

        models.copy = _keep_tables(copy, Table)
        original = models.DynamoDBBackend.transact_write_items

        def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
            saved = []
            for entry in transact_items:
                _kind, op = next(iter(entry.items()))
                name = op.get("TableName")
                if name not in self.tables:
                    continue
                table = self.tables[name]
                if "Item" in op:
                    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                    if table.range_key_attr is not None and table.range_key_attr in op["Item"]:
                        key[table.range_key_attr] = op["Item"][table.range_key_attr]
                else:
                    key = op.get("Key")
                if not key:
                    continue
                try:
                    current = self.get_item(name, key)
                except Exception:  # noqa: BLE001 - a malformed key: moto's own code answers it
                    continue
                saved.append((name, key, current.to_json()["Attributes"] if current else None))
            try:
                original(self, transact_items)
            except Exception:
                for name, key, attributes in reversed(saved):
                    if attributes is None:
                        try:
                            self.delete_item(name, key)
                        except Exception:  # noqa: BLE001 - it was never written
                            pass
                    else:
                        self.put_item(name, attributes)
                raise

        models.DynamoDBBackend.transact_write_items = transact_write_items
        for name in ATOMIC_OPERATIONS:
            real = getattr(models.DynamoDBBackend, name, None)
            if real is not None:
                setattr(models.DynamoDBBackend, name, _atomic(real))
        _applied = True


def _atomic(operation):
    def atomic(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _writes:
            return operation(self, *args, **kwargs)

    atomic.__wrapped__ = operation
    return atomic
