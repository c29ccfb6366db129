"""Plan templates: the YAML files in the plans folder, validated on load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.domain.plan import PlanSpec
from app.domain.validation import PlanInvalidError, PlanProblem, parse_plan
from app.problems import InvalidInputError, NotFoundError

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    path: Path
    spec: PlanSpec | None
    problems: tuple[PlanProblem, ...] = ()


def read_plan_file(path: Path) -> PlanSpec:
    """Load and validate one plan file; every problem is reported with its field path."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanInvalidError([PlanProblem("(file)", "no such file")]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise PlanInvalidError([PlanProblem("(file)", f"cannot read: {exc}")]) from None
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanInvalidError([PlanProblem(where, f"not valid YAML: {problem}")]) from None
    return parse_plan(data)


def list_templates(plans_dir: Path) -> list[TemplateInfo]:
    if not plans_dir.is_dir():
        return []
    infos = []
    for path in sorted(p for p in plans_dir.iterdir() if p.suffix in _SUFFIXES):
        try:
            infos.append(TemplateInfo(path.stem, path, read_plan_file(path)))
        except PlanInvalidError as exc:
            infos.append(TemplateInfo(path.stem, path, None, tuple(exc.problems)))
    return infos


def load_template(plans_dir: Path, name: str) -> PlanSpec:
    for info in list_templates(plans_dir):
        if info.name == name:
            if info.spec is None:
                raise InvalidInputError(
                    f"template {name!r} is invalid",
                    [(p.path, p.message) for p in info.problems],
                )
            return info.spec
    known = ", ".join(i.name for i in list_templates(plans_dir)) or "none"
    raise NotFoundError(f"no plan template named {name!r} (known: {known})")
