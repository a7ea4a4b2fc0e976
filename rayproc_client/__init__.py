"""A typed Python client for rayproc's HTTP API.

::

    from rayproc_client import Client, TaskStatus

    rp = Client()  # RAYPROC_URL (default http://127.0.0.1:8000) and RAYPROC_TOKEN
    task = rp.create_task("demo", name="first-look", source="/data/samples")
    task.wait_till_done()                  # raises TaskFailedError / TaskTimeoutError
    for t in rp.list_tasks("demo", status=TaskStatus.COMPLETED):
        print(t.uid, t.name, t.created_data_rows, t.failed_data_rows)

:class:`AsyncClient` offers the same methods for ``asyncio``. Errors are in :mod:`rayproc_client.errors`, one class
per ``error_code`` the service answers (the service's own classes, from the wire contract ``rayproc_contract``). The
package needs only ``httpx``, ``pydantic`` and that contract: no Ray, no FastAPI, no server package.
"""

from rayproc_client._core import DEFAULT_URL, TOKEN_ENV, URL_ENV, __version__
from rayproc_client.client import AsyncClient, Client
from rayproc_client.errors import (
    BadRequest,
    ClientError,
    Conflict,
    ConnectError,
    Forbidden,
    InsufficientStorage,
    InternalError,
    InvalidParameter,
    InvalidRequest,
    InvalidResourceId,
    InvalidState,
    MethodNotAllowed,
    NotFound,
    PathNotAllowed,
    PayloadTooLarge,
    RayUnavailable,
    RequestTimeout,
    ServiceError,
    StorageUnavailable,
    TaskError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
    Unauthorized,
    UnexpectedResponse,
    UnsupportedMediaType,
)
from rayproc_client.models import (
    ClusterInfo,
    Health,
    IssuedToken,
    Membership,
    NodeInfo,
    OperatorInfo,
    ProjectInfo,
    TaskInfo,
    TaskPage,
    TemplateInfo,
    TemplateItem,
    TokenInfo,
    UserInfo,
    Whoami,
)
from rayproc_client.task import (
    MIN_CHECK_FREQUENCY,
    AsyncTask,
    BaseTask,
    ErrorEntry,
    Task,
    TaskStatus,
)

__all__ = [
    "DEFAULT_URL",
    "MIN_CHECK_FREQUENCY",
    "TOKEN_ENV",
    "URL_ENV",
    "AsyncClient",
    "AsyncTask",
    "BadRequest",
    "BaseTask",
    "Client",
    "ClientError",
    "ClusterInfo",
    "Conflict",
    "ConnectError",
    "ErrorEntry",
    "Forbidden",
    "Health",
    "InsufficientStorage",
    "InternalError",
    "InvalidParameter",
    "InvalidRequest",
    "InvalidResourceId",
    "InvalidState",
    "IssuedToken",
    "Membership",
    "MethodNotAllowed",
    "NodeInfo",
    "NotFound",
    "OperatorInfo",
    "PathNotAllowed",
    "PayloadTooLarge",
    "ProjectInfo",
    "RayUnavailable",
    "RequestTimeout",
    "ServiceError",
    "StorageUnavailable",
    "Task",
    "TaskError",
    "TaskFailedError",
    "TaskInfo",
    "TaskPage",
    "TaskStatus",
    "TaskTimeoutError",
    "TemplateInfo",
    "TemplateItem",
    "TokenInfo",
    "TransportError",
    "Unauthorized",
    "UnexpectedResponse",
    "UnsupportedMediaType",
    "UserInfo",
    "Whoami",
    "__version__",
]
