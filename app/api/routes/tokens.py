from __future__ import annotations

from fastapi import APIRouter, status

from app.api.auth import RequireAdmin
from app.api.deps import ContextDep, DatabaseDep
from app.api.params import TokenId
from app.api.problem_docs import AUTHENTICATED, problems
from app.api.schemas import TokenCreate, TokenCreated, TokenRead
from app.db.repos.tokens import TokenRepository
from app.services.tokens import create_token, revoke_token

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], responses=AUTHENTICATED)


@router.get("", response_model=list[TokenRead])
def list_tokens(db: DatabaseDep, caller: RequireAdmin) -> list[TokenRead]:
    with db.reading() as session:
        rows = TokenRepository(session).list_tokens()
    return [TokenRead.from_row(row) for row in rows]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=TokenCreated, responses=problems(400)
)
def new_token(
    body: TokenCreate, db: DatabaseDep, ctx: ContextDep, caller: RequireAdmin
) -> TokenCreated:
    with db.writing() as session:
        plaintext, row = create_token(session, role=body.role, name=body.name, now=ctx.clock.now())
    return TokenCreated(**TokenRead.from_row(row).model_dump(), token=plaintext)


@router.delete("/{token_id}", response_model=TokenRead, responses=problems(404))
def delete_token(
    token_id: TokenId, db: DatabaseDep, ctx: ContextDep, caller: RequireAdmin
) -> TokenRead:
    with db.writing() as session:
        row = revoke_token(session, token_id=token_id, now=ctx.clock.now())
    ctx.verified_tokens.forget(token_id)
    return TokenRead.from_row(row)
