"""The service's answers as pydantic models.

Every model keeps fields it does not know (``extra="allow"``), so a newer service adds fields without breaking an
older client; fields the service may leave out have defaults. Models are frozen: a refreshed task gets a new
:class:`TaskInfo` rather than a changed one. :class:`TaskInfo` and :class:`TaskPage` are the wire contract's
reading of the service's own task model (:mod:`rayproc_contract.models`), so their fields are written once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rayproc_contract.models import TaskInfo, TaskPage

__all__ = [
    "ClusterInfo",
    "Health",
    "IssuedToken",
    "Membership",
    "NodeInfo",
    "OperatorInfo",
    "ProjectInfo",
    "Role",
    "TaskInfo",
    "TaskPage",
    "TemplateInfo",
    "TemplateItem",
    "TokenInfo",
    "UserInfo",
    "Whoami",
]

#: A member's role in a project (service admins see every project with the role ``"admin"``).
Role = Literal["viewer", "member"]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class OperatorInfo(_Answer):
    id: str
    description: str = ""
    requires: list[str] = Field(default_factory=list)
    params_schema: dict[str, Any] = Field(default_factory=dict, description="The operator's params as JSON Schema.")


class TemplateInfo(_Answer):
    """A template (task type) with every operator it can run and the ones it runs by default."""

    template_id: str
    label_en: str = ""
    label_zh: str = ""
    default_operators: list[str] = Field(default_factory=list)
    operators: list[OperatorInfo] = Field(default_factory=list)


class TemplateItem(_Answer):
    """ModelArts' short template entry."""

    template_id: str
    label_en: str = ""
    label_zh: str = ""


class ProjectInfo(_Answer):
    project_id: str
    name: str = ""
    role: str | None = Field(None, description='"viewer", "member", or "admin" for service admins.')


class Whoami(_Answer):
    name: str
    is_admin: bool
    projects: list[ProjectInfo] = Field(default_factory=list)


class UserInfo(_Answer):
    name: str
    is_admin: bool = False
    create_time: int | None = None


class IssuedToken(_Answer):
    """A new token. ``token`` is shown in this answer only; it is left out of ``repr`` so logs do not keep it."""

    token_id: str
    token: str = Field(repr=False)
    user: str


class TokenInfo(_Answer):
    """A token's record (never the token itself)."""

    token_id: str
    name: str = ""
    user: str
    create_time: int | None = None
    revoked: bool = False


class Membership(_Answer):
    project_id: str
    user: str
    role: Role


class NodeInfo(_Answer):
    node_id: str
    alive: bool
    address: str | None = None
    is_head: bool = False
    resources: dict[str, float] = Field(default_factory=dict)


class ClusterInfo(_Answer):
    """The Ray cluster's nodes and resources, as the service sees them."""

    nodes: list[NodeInfo] = Field(default_factory=list)
    alive_nodes: int = 0
    total_resources: dict[str, float] = Field(default_factory=dict)
    available_resources: dict[str, float] = Field(default_factory=dict)


class Health(_Answer):
    status: str
    ray: str = Field(description='"reachable" or "unreachable": whether the Ray Jobs API answers.')
