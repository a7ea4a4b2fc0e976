"""Processing templates: what each task type runs, and the params each operator takes."""

from __future__ import annotations

from fastapi import APIRouter

from jobs.catalog import describe_templates
from rayproc_contract.models import TemplateItems, TemplatesPublic
from serve_app import errors as E
from serve_app.auth import Reader
from serve_app.deps import ServiceDep

router = APIRouter(prefix="/v2/{project_id}", tags=["processor-templates"])


@router.get("/processor-templates", response_model=TemplatesPublic, responses=E.error_responses(400, 401, 404))
def list_templates(*, access: Reader, service: ServiceDep) -> dict:
    """The five templates, each with its operators, their descriptions and params as JSON Schema."""
    templates = describe_templates(service.registry)
    return {"total": len(templates), "templates": templates}


@router.get("/processor-tasks/items", response_model=TemplateItems, responses=E.error_responses(400, 401, 404))
def list_template_items(*, access: Reader, service: ServiceDep) -> dict:
    """ModelArts' template list: ``{total, items: [{template_id, label_en, label_zh}]}``."""
    items = [{k: t[k] for k in ("template_id", "label_en", "label_zh")} for t in describe_templates(service.registry)]
    return {"total": len(items), "items": items}
