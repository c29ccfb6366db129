"""Plan templates: the YAML files shipped in the package, plus an optional folder of the
operator's (``PIM_ROLLOUT_PLANS_DIR``) whose files add templates or replace a packaged one of
the same name. Every template is validated on load."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePath
from typing import Any

import yaml

from app.domain.plan import PlanSpec
from app.domain.validation import PlanInvalidError, PlanProblem, parse_plan
from app.problems import AppError, InvalidInputError, NotFoundError

_SUFFIXES = (".yaml", ".yml")


class PlansDirError(AppError):
    """``PIM_ROLLOUT_PLANS_DIR`` names something that is not a folder (any more)."""

    slug = "plans-dir-missing"
    title = "The plans folder is missing"


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    source: str
    """Where the file is: ``package`` for a shipped template, else the file's path."""
    spec: PlanSpec | None
    problems: tuple[PlanProblem, ...] = ()


def packaged_plans() -> Traversable:
    """The folder of plan templates inside the installed package."""
    return resources.files("app") / "rollout_plans"


def parse_plan_text(text: str) -> PlanSpec:
    """Parse and validate a plan's YAML; every problem is reported with its field path."""
    try:
        # libyaml's loader where PyYAML has it: the same YAML, parsed ten times faster.
        data: Any = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanInvalidError([PlanProblem(where, f"not valid YAML: {problem}")]) from None
    return parse_plan(data)


def _read(file: Traversable) -> PlanSpec:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanInvalidError([PlanProblem("(file)", "no such file")]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise PlanInvalidError([PlanProblem("(file)", f"cannot read: {exc}")]) from None
    return parse_plan_text(text)


def read_plan_file(path: Path) -> PlanSpec:
    """Load and validate one plan file; every problem is reported with its field path."""
    return _read(path)


def check_plans_dir(plans_dir: Path) -> None:
    if not plans_dir.is_dir():
        raise PlansDirError(
            f"PIM_ROLLOUT_PLANS_DIR is {str(plans_dir)!r}, which is not a folder "
            "(it names a folder of plan templates added to the packaged ones)"
        )


def _plan_files(folder: Traversable) -> Iterator[tuple[str, Traversable]]:
    for file in sorted(folder.iterdir(), key=lambda f: f.name):
        name = PurePath(file.name)
        if name.suffix in _SUFFIXES and file.is_file():
            yield name.stem, file


def list_templates(plans_dir: Path | None = None) -> list[TemplateInfo]:
    """Every plan template by name: the packaged ones, then those of ``plans_dir`` (the
    ``PIM_ROLLOUT_PLANS_DIR`` setting), which replace a packaged template of the same name."""
    found: dict[str, tuple[str, Traversable]] = {
        name: ("package", file) for name, file in _plan_files(packaged_plans())
    }
    if plans_dir is not None:
        check_plans_dir(plans_dir)
        found.update((name, (str(file), file)) for name, file in _plan_files(plans_dir))
    infos = []
    for name in sorted(found):
        source, file = found[name]
        try:
            infos.append(TemplateInfo(name, source, _read(file)))
        except PlanInvalidError as exc:
            infos.append(TemplateInfo(name, source, None, tuple(exc.problems)))
    return infos


def load_template(plans_dir: Path | None, name: str) -> PlanSpec:
    templates = list_templates(plans_dir)
    for info in templates:
        if info.name == name:
            if info.spec is None:
                raise InvalidInputError(
                    f"template {name!r} is invalid",
                    [(p.path, p.message) for p in info.problems],
                )
            return info.spec
    known = ", ".join(i.name for i in templates) or "none"
    raise NotFoundError(f"no plan template named {name!r} (known: {known})")
