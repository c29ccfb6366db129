from __future__ import annotations

from fastapi import APIRouter

from app.api.auth import RequireViewer
from app.api.deps import ContextDep
from app.api.problem_docs import AUTHENTICATED, problems
from app.api.schemas import TemplateRead
from app.domain.validation import iso_duration
from app.problems import NotFoundError
from app.services.templates import TemplateInfo, list_templates

router = APIRouter(
    prefix="/api/v1/plan-templates", tags=["plan templates"], responses=AUTHENTICATED
)


def _read(info: TemplateInfo) -> TemplateRead:
    if info.spec is None:
        return TemplateRead(
            name=info.name,
            valid=False,
            problems=[{"path": p.path, "message": p.message} for p in info.problems],
        )
    spec = info.spec
    return TemplateRead(
        name=info.name,
        valid=True,
        title=spec.title,
        description=spec.description,
        roles=[{"id": str(r.id), "name": r.name} for r in spec.roles],
        phases=[
            {
                "key": p.key,
                "title": p.title,
                "starts_after": iso_duration(p.starts_after),
                "gate": p.gate.value,
                "steps": [s.kind for s in p.steps],
            }
            for p in spec.phases
        ],
    )


@router.get("", response_model=list[TemplateRead])
def get_templates(ctx: ContextDep, caller: RequireViewer) -> list[TemplateRead]:
    return [_read(info) for info in list_templates(ctx.settings.plans_dir)]


@router.get("/{name}", response_model=TemplateRead, responses=problems(404))
def get_template(name: str, ctx: ContextDep, caller: RequireViewer) -> TemplateRead:
    for info in list_templates(ctx.settings.plans_dir):
        if info.name == name:
            return _read(info)
    raise NotFoundError(f"no plan template named {name!r}")
