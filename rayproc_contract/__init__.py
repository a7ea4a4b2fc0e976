"""rayproc's wire contract: what the service answers and the client reads, defined once for both.

* :mod:`rayproc_contract.status`: the task statuses (:class:`TaskStatus`, with ``is_terminal()``) and the task
  types (:class:`TaskType`);
* :mod:`rayproc_contract.ids`: the id rule (:func:`validate_resource_id`);
* :mod:`rayproc_contract.errors`: the error codes and the one error tree;
* :mod:`rayproc_contract.idempotency`: the ``Idempotency-Key`` header's name and format (:func:`validate_key`);
* :mod:`rayproc_contract.query`: the task list's query (:class:`ListQuery`);
* :mod:`rayproc_contract.models`: the public task (:class:`ProcessorTaskPublic`, and :class:`TaskInfo`, its tolerant
  reading).

It needs pydantic and nothing else: the service (``serve_app``, ``jobs``, ``operators``) and the client
(``rayproc_client``) both import it, and it imports neither.
"""

from rayproc_contract.status import TaskStatus, TaskType

__all__ = ["TaskStatus", "TaskType"]
