"""Accounts: SSH key pairs, username/password and tokens. Secrets are encrypted and write-only."""

from __future__ import annotations

import io

import paramiko
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from infrastructure.models import Account
from portal.encryption import decrypt, encrypt
from portal.models import Event, Space, User
from portal.services.audit import differences, record_event, snapshot

_SECRETS = frozenset({"private_key_encrypted", "passphrase_encrypted", "password_encrypted"})
_AUDITED = ["name", "description", "account_type", "username", *sorted(_SECRETS)]


def _check_private_key(private_key: str, passphrase: str) -> None:
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            key_class.from_private_key(io.StringIO(private_key), password=passphrase or None)
            return
        except paramiko.PasswordRequiredException:
            raise ValidationError({"passphrase": "The private key is encrypted: give its passphrase."}) from None
        except (paramiko.SSHException, ValueError):
            continue
    raise ValidationError(
        {
            "private_key": "This is not a private key Reef can read (OpenSSH or PEM; RSA, ECDSA or "
            "Ed25519), or the passphrase is wrong."
        }
    )


@transaction.atomic
def save_account(
    *,
    actor: User,
    space: Space,
    account: Account | None = None,
    name: str,
    account_type: str,
    username: str = "",
    description: str = "",
    private_key: str | None = None,
    passphrase: str | None = None,
    password: str | None = None,
) -> Account:
    """Create (account None) or update. A secret given as None keeps the stored one."""
    name = (name or "").strip()
    _check_account_fields(space=space, account=account, name=name, account_type=account_type, username=username)
    before = snapshot(account, _AUDITED, _SECRETS) if account else {}
    account = account or Account(space=space)
    account.name, account.account_type, account.username, account.description = (
        name,
        account_type,
        (username or "").strip(),
        description,
    )
    _set_secrets(account, private_key=private_key, passphrase=passphrase, password=password)
    try:
        account.save()
    except IntegrityError:
        raise ValidationError({"name": f"An account named {name!r} already exists."}) from None
    changes = differences(before, snapshot(account, _AUDITED, _SECRETS))
    if changes:
        record_event(
            actor=actor,
            category=Event.Category.MODIFIED if before else Event.Category.CREATED,
            document=account,
            changes=changes,
        )
    return account


def _check_account_fields(
    *, space: Space, account: Account | None, name: str, account_type: str, username: str
) -> None:
    errors = {}
    if not name:
        errors["name"] = "An account needs a name."
    elif Account.objects.filter(space=space, name__iexact=name).exclude(pk=account.pk if account else None).exists():
        errors["name"] = f"An account named {name!r} already exists."
    if account_type not in Account.AccountType.values:
        errors["account_type"] = f"{account_type!r} is not one of {', '.join(Account.AccountType.values)}."
    if account_type in Account.SSH_TYPES and not (username or "").strip():
        errors["username"] = "SSH accounts need a username."
    if account is not None and account.account_type != account_type:
        errors["account_type"] = "An account's type cannot change."
    if errors:
        raise ValidationError(errors)


def _set_secrets(account: Account, *, private_key: str | None, passphrase: str | None, password: str | None) -> None:
    """Encrypts the secrets given (None keeps the stored one) and insists on the one the account's type needs."""
    account_type = account.account_type
    if account_type == Account.AccountType.SSH_KEY_PAIR:
        if private_key is not None:
            _check_private_key(private_key, passphrase or "")
            account.private_key_encrypted, account.passphrase_encrypted = (
                encrypt(private_key),
                encrypt(passphrase or ""),
            )
        if not account.private_key_encrypted:
            raise ValidationError({"private_key": "An SSH key pair account needs a private key."})
    elif password is not None:
        account.password_encrypted = encrypt(password)
    if account_type != Account.AccountType.SSH_KEY_PAIR and not account.password_encrypted:
        raise ValidationError(
            {
                "password": "This account needs a password."
                if account_type == "UsernamePassword"
                else "This account needs a token."
            }
        )


def account_secrets(account: Account) -> dict[str, str]:
    """Decrypted secrets, for the SSH transport only. Never serialised, logged or shown."""
    return {
        "private_key": decrypt(account.private_key_encrypted),
        "passphrase": decrypt(account.passphrase_encrypted),
        "password": decrypt(account.password_encrypted),
    }


@transaction.atomic
def delete_account(*, actor: User, account: Account) -> None:
    users = list(account.workers.values_list("name", flat=True)[:20])
    if users:
        raise ValidationError(f"{account.name} is used by these workers: {', '.join(users)}.")
    record_event(actor=actor, category=Event.Category.DELETED, document=account)
    account.delete()
