"""`phr idp staff …`: counter-staff accounts (the phone path of card-less sign-in)."""

from __future__ import annotations

import click
from sqlalchemy import select

from idp.card.lookup import reindex as run_reindex
from idp.card.services import CardServices
from idp.passkey import staff as staff_accounts
from idp.passkey.models import Staff
from phr_core.config import Settings, load_settings
from phr_core.db import Database


def _db() -> tuple[Database, Settings]:
    settings = load_settings()
    return Database(settings.database_urls["idp"]), settings


@click.group("staff")
def staff() -> None:
    """Counter-staff accounts: staff check a person in person and issue a one-time passkey
    enrollment code at /staff/ on the IdP."""


@staff.command("add")
@click.argument("login")
@click.password_option(
    "--password",
    help=f"At least {staff_accounts.MIN_PASSWORD_LENGTH} characters (asked for when omitted).",
)
def add(login: str, password: str) -> None:
    """Create the staff account LOGIN; its password is stored as an scrypt hash."""
    db, _ = _db()
    try:
        with db.session() as s:
            staff_accounts.add_staff(s, login, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(f"staff account {login} created; it signs in at /staff/login")


@staff.command("list")
def list_staff() -> None:
    """List staff accounts and their state."""
    db, _ = _db()
    try:
        with db.session() as s:
            for row in s.scalars(select(Staff).order_by(Staff.login)):
                state = "disabled" if row.disabled else "active"
                if row.locked_until is not None:
                    state += f", locked until {row.locked_until:%Y-%m-%d %H:%M}"
                click.echo(f"{row.login:<32} {state}")
    finally:
        db.dispose()


def _set(login: str, action: str) -> None:
    db, _ = _db()
    try:
        with db.session() as s:
            if action == "unlock":
                found = staff_accounts.unlock(s, login)
            else:
                found = staff_accounts.set_disabled(s, login, action == "disable")
    finally:
        db.dispose()
    if not found:
        raise click.ClickException(f"no staff account {login!r}")
    click.echo(f"staff account {login}: {action}d")


@staff.command("unlock")
@click.argument("login")
def unlock(login: str) -> None:
    """End a lock-out after too many wrong passwords."""
    _set(login, "unlock")


@staff.command("disable")
@click.argument("login")
def disable(login: str) -> None:
    """Stop an account from signing in; its open sessions stop working at once."""
    _set(login, "disable")


@staff.command("enable")
@click.argument("login")
def enable(login: str) -> None:
    """Allow a disabled account to sign in again."""
    _set(login, "enable")


@staff.command("reindex")
def reindex() -> None:
    """Index the card-verified name and birth date of every enrolled person so that staff can
    find them (needed once for people enrolled before the index existed)."""
    db, settings = _db()
    services = CardServices.from_settings(settings)
    try:
        with db.session() as s:
            count = run_reindex(
                s,
                settings.secret("PHR_IDP_DATA_KEY"),
                services.open_attributes,
            )
    finally:
        db.dispose()
    click.echo(f"indexed {count} enrolled person(s)")
