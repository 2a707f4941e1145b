"""The result store: content-addressed record files (the truth) and their SQLite index.

`ResultStore` writes and reads records and logs; `StoreIndex` answers the planner's questions
(`snapshot`) and can always be rebuilt from the files (`reindex`) or checked against them
(`verify`).
"""

from reconciler.adapters.store.files import ResultStore
from reconciler.adapters.store.index import StoreIndex
from reconciler.adapters.store.layout import StoreLayout
from reconciler.adapters.store.queries import StoredResult
from reconciler.adapters.store.rebuild import ReindexCounts
from reconciler.adapters.store.schema import ResultRow

__all__ = [
    "ReindexCounts",
    "ResultRow",
    "ResultStore",
    "StoreIndex",
    "StoreLayout",
    "StoredResult",
]
