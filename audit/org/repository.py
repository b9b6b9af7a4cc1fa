"""Queries for users and departments."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from audit.org.models import Department, User


def department_ids_by_name(session: Session) -> dict[str, int]:
    return {name: id_ for id_, name in session.execute(select(Department.id, Department.name))}


def departments(session: Session) -> Sequence[Department]:
    return session.scalars(select(Department).order_by(Department.name)).all()


def department_by_name(session: Session, name: str) -> Department | None:
    return session.scalars(select(Department).where(Department.name == name)).one_or_none()


def user_by_username(session: Session, username: str) -> User | None:
    return session.scalars(
        select(User).where(User.username == username).options(selectinload(User.departments))
    ).one_or_none()


def user_by_id(session: Session, user_id: int) -> User | None:
    """The user with their departments in one statement (every unit of work of the app starts here;
    ``selectinload`` would be a second round trip and costs three times the CPU)."""
    return (
        session.scalars(select(User).where(User.id == user_id).options(joinedload(User.departments)))
        .unique()
        .one_or_none()
    )


def users(session: Session, *, roles: Iterable[str] | None = None, active_only: bool = False) -> Sequence[User]:
    query = select(User).options(selectinload(User.departments)).order_by(User.username)
    if roles is not None:
        query = query.where(User.role.in_(list(roles)))
    if active_only:
        query = query.where(User.active.is_(True))
    return session.scalars(query).all()
