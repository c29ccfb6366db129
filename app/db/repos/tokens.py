from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from app.db.models import ApiToken


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        self.session.flush()
        return token

    def get(self, token_id: int) -> ApiToken | None:
        return self.session.get(ApiToken, token_id)

    def get_active_by_hash(self, token_hash: str) -> ApiToken | None:
        statement = select(ApiToken).where(
            ApiToken.token_hash == token_hash, col(ApiToken.revoked_at).is_(None)
        )
        return self.session.exec(statement).first()

    def list_tokens(self) -> Sequence[ApiToken]:
        return self.session.exec(select(ApiToken).order_by(col(ApiToken.id))).all()

    def record_use(self, token: ApiToken, at: datetime) -> None:
        token.last_used_at = at
        self.session.add(token)
