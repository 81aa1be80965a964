"""Secrets Manager: one refresh-token secret and one access-token secret per advertiser, or a
share of a pack's two (``adsauth.packs``).

They sit under two prefixes so IAM can let downstream read access tokens without ever reaching a
refresh token: ``<prefix>refresh/<advertiser>`` and ``<prefix>access/<advertiser>``.

A refresh token is never overwritten by an older one. Every write names its new secret version
after the version it replaces (``VersionId = uuid5(previous VersionId)``, passed as the
``ClientRequestToken``). Secrets Manager refuses a second, different value under an existing
version id, so each version has at most one successor: of two writers that started from the same
token, the second one fails (``RefreshTokenSuperseded``) instead of replacing the first one's
newer token, however late it arrives. A new grant from a consent is written as the successor of
whatever is current (found with DescribeSecret), so it always wins. The refresher needs only
Get/PutSecretValue for this: no version-stage permission. (Secrets Manager drops versions beyond
~100; a writer would have to stall through 100 rotations to find its successor slot free again.)

Deployed, new secrets are created with the stack's KMS key (``kms_key_id``), and every new grant
puts a resource policy on its refresh-token secret that denies reading it to every principal but
``refresh_readers`` (ARN patterns: the callback and refresh worker roles' IAM path, the account
root, configured operators). Both are optional: the local stack runs without them.

Pack secrets (``<prefix>refresh/packs/<pack>``, ``<prefix>access/packs/<pack>``) follow the same
successor rule: ``write_pack`` writes its value as the successor of the version it read. When
another writer got there first, it re-reads and merges its original changes, against its original
base, into the current entries (``packs.merge``: a change to an entry someone else changed meanwhile
is dropped, so a removal by a revoke is never undone), then writes as the successor of that version.
A pack's secrets are created by their first write (the refresher's: so it, unlike for an
advertiser's, also creates and tags secrets, and protects a pack's refresh secret with the same
readers-only resource policy).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from typing import Any, Mapping

from adsauth import packs
from adsauth.errors import PackTooLarge, RefreshTokenMissing, RefreshTokenSuperseded, TokensDeleted
from adsauth.models import GrantReceipt, StoredRefreshToken, TokenSet
from adsauth.packs import PackValue

SUCCESSOR_NAMESPACE = uuid.UUID("0b5a3c55-5e2f-4d8e-9a57-4f1d8f3c2a61")
NEW_GRANT_ATTEMPTS = 5
PACK_WRITE_ATTEMPTS = 5  # each lost race means another writer's value went in: a few always suffice
PACK_NAMES = {"refresh": packs.refresh_name, "access": packs.access_name}


def successor_version(version_id: str) -> str:
    return str(uuid.uuid5(SUCCESSOR_NAMESPACE, version_id))


def readers_only_policy(readers: tuple[str, ...] | list[str]) -> str:
    """The resource policy of a refresh-token secret: reading denied to every principal whose ARN
    matches none of ``readers`` (the same statement the stack puts on the LwA client secret)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OnlyTokenReadersMayRead",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                    "Condition": {"StringNotLike": {"aws:PrincipalArn": list(readers)}},
                }
            ],
        }
    )


class SecretsManagerVault:
    def __init__(
        self, *, client: Any, prefix: str, kms_key_id: str = "", refresh_readers: tuple[str, ...] = ()
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.kms_key_id = kms_key_id
        self.refresh_readers = tuple(refresh_readers)

    def refresh_secret_name(self, advertiser_id: str) -> str:
        return f"{self.prefix}refresh/{advertiser_id}"

    def access_secret_name(self, advertiser_id: str) -> str:
        return f"{self.prefix}access/{advertiser_id}"

    # --- refresh tokens ------------------------------------------------------------------------
    def get_refresh_token(self, advertiser_id: str) -> StoredRefreshToken:
        errors = self.client.exceptions
        try:
            secret = self.client.get_secret_value(SecretId=self.refresh_secret_name(advertiser_id))
        except (errors.ResourceNotFoundException, errors.InvalidRequestException):
            raise RefreshTokenMissing() from None  # absent, or deleted and awaiting removal
        try:
            token = json.loads(secret["SecretString"])["refresh_token"]
        except (KeyError, TypeError, ValueError):  # never chained: the error could quote the value
            token = None
        if not isinstance(token, str) or not token:
            raise RefreshTokenMissing()
        return StoredRefreshToken(value=token, version=secret["VersionId"])

    # --- a new grant (consent, manual exchange, import): the only writer that creates secrets ----
    def put_grant(self, advertiser_id: str, tokens: TokenSet, issued_at: float) -> GrantReceipt:
        """Store a new grant's refresh token (first: it is the grant), then its access token,
        creating the secrets when missing. The receipt names the versions replaced (whoever wrote
        them: an earlier grant, a flow that completed meanwhile), so ``undo_grant`` can put them
        back. If the access token cannot be stored, the refresh token just written is taken back
        before the error goes on."""
        previous_access = self._current_version(self.access_secret_name(advertiser_id))
        previous_refresh, new_refresh = self.put_refresh_token(advertiser_id, tokens.refresh_token, issued_at)
        receipt = GrantReceipt(previous_refresh, new_refresh, previous_access)
        try:
            new_access = self._put_access(advertiser_id, tokens.access_token, tokens.expires_at, create=True)
        except Exception:
            self.undo_grant(advertiser_id, receipt, revoked=False)
            raise
        return replace(receipt, new_access_version=new_access)

    def undo_grant(self, advertiser_id: str, receipt: GrantReceipt, *, revoked: bool) -> None:
        """Take back a grant whose completion lost its commit. Revoked meanwhile: both secrets
        go. Otherwise only what this grant wrote and nobody replaced since: a version it replaced
        is made current again, a secret it created is deleted; a newer grant is left alone."""
        if revoked:
            self.delete_tokens(advertiser_id)
            return
        for name, ours, previous in (
            (self.refresh_secret_name(advertiser_id), receipt.new_refresh_version, receipt.previous_refresh_version),
            (self.access_secret_name(advertiser_id), receipt.new_access_version, receipt.previous_access_version),
        ):
            if ours is None or self._current_version(name) != ours:
                continue  # not written, or replaced since (a newer grant, a refresh): not ours to undo
            if previous is None:
                self._delete(name)
                continue
            old = self.client.get_secret_value(SecretId=name, VersionId=previous)["SecretString"]
            try:  # as the successor of ours, so the refresh-token chain stays one line
                self.client.put_secret_value(SecretId=name, SecretString=old, ClientRequestToken=successor_version(ours))
            except self.client.exceptions.ResourceExistsException:
                pass  # a refresher rotated the new grant meanwhile: its successor stays

    def put_refresh_token(self, advertiser_id: str, refresh_token: str, issued_at: float) -> tuple[str | None, str]:
        """A new grant's refresh token: replaces whatever is current. Returns (the version it
        replaced or None, its own version)."""
        name = self.refresh_secret_name(advertiser_id)
        value = {"refresh_token": refresh_token, "issued_at": issued_at, "fence": 0}
        for _ in range(NEW_GRANT_ATTEMPTS):
            current = self._current_version(name)
            if current is None:
                created = self._create(name, value, advertiser_id, "refresh")
                if created:
                    self._protect(name)
                    return None, created
                continue  # created concurrently: replace that version instead
            try:
                self._put_successor(name, value, current)
                self._protect(name)  # again on every new grant: keeps the readers current
                return current, successor_version(current)
            except RefreshTokenSuperseded:
                continue  # a refresher wrote meanwhile: replace its version instead
        raise RefreshTokenSuperseded()

    def _protect(self, name: str) -> None:
        if self.refresh_readers:
            self.client.put_resource_policy(
                SecretId=name, ResourcePolicy=readers_only_policy(self.refresh_readers), BlockPublicPolicy=True
            )

    def replace_refresh_token(
        self, advertiser_id: str, refresh_token: str, issued_at: float, *, replaces: str, fence: int
    ) -> None:
        """A rotated token from a refresh that started from version ``replaces``."""
        value = {"refresh_token": refresh_token, "issued_at": issued_at, "fence": fence}
        self._put_successor(self.refresh_secret_name(advertiser_id), value, replaces)

    def _current_version(self, name: str) -> str | None:
        try:
            stages = self.client.describe_secret(SecretId=name).get("VersionIdsToStages", {})
        except self.client.exceptions.ResourceNotFoundException:
            return None
        return next((v for v, labels in stages.items() if "AWSCURRENT" in labels), None)

    def _put_successor(self, name: str, value: dict, replaces: str) -> None:
        errors = self.client.exceptions
        try:
            self.client.put_secret_value(
                SecretId=name, SecretString=json.dumps(value), ClientRequestToken=successor_version(replaces)
            )
        except (errors.ResourceExistsException, errors.ResourceNotFoundException, errors.InvalidRequestException):
            # a successor exists already, or the secret is gone (revoked: deleted or being deleted)
            raise RefreshTokenSuperseded() from None

    # --- access tokens -------------------------------------------------------------------------
    def put_access_token(self, advertiser_id: str, access_token: str, expires_at: float) -> None:
        """The refresher's write: an existing secret only. A secret that is gone (the advertiser
        was revoked meanwhile) raises ``TokensDeleted`` and is never created again here."""
        self._put_access(advertiser_id, access_token, expires_at, create=False)

    def _put_access(self, advertiser_id: str, access_token: str, expires_at: float, *, create: bool) -> str:
        """Write the access token; returns the version written."""
        name = self.access_secret_name(advertiser_id)
        value = {"access_token": access_token, "expires_at": expires_at}
        errors = self.client.exceptions
        try:
            return self.client.put_secret_value(SecretId=name, SecretString=json.dumps(value))["VersionId"]
        except errors.ResourceNotFoundException:
            if not create:
                raise TokensDeleted() from None
        except errors.InvalidRequestException:  # scheduled for deletion
            raise TokensDeleted() from None
        created = self._create(name, value, advertiser_id, "access")
        if created:
            return created
        # created concurrently by another request: write our value as the current version
        return self.client.put_secret_value(SecretId=name, SecretString=json.dumps(value))["VersionId"]

    def get_access_token(self, advertiser_id: str) -> tuple[str, float]:
        """The advertiser's own access token and its expiry (to move it into a pack without a
        refresh); ``TokensDeleted`` when the secret is gone."""
        errors = self.client.exceptions
        try:
            secret = self.client.get_secret_value(SecretId=self.access_secret_name(advertiser_id))
        except (errors.ResourceNotFoundException, errors.InvalidRequestException):
            raise TokensDeleted() from None  # absent, or deleted and awaiting removal
        try:
            value = json.loads(secret["SecretString"])
            token, expires_at = value["access_token"], float(value["expires_at"])
        except (KeyError, TypeError, ValueError):  # never chained: the error could quote the value
            token, expires_at = None, 0.0
        if not isinstance(token, str) or not token:
            raise TokensDeleted()
        return token, expires_at

    # --- packs (``adsauth.packs``) ---------------------------------------------------------------
    def pack_secret_name(self, kind: str, pack_id: str) -> str:
        return PACK_NAMES[kind](self.prefix, pack_id)

    def read_pack(self, kind: str, pack_id: str) -> PackValue:
        """Pack secret ``kind`` ("refresh" or "access"); ``PackValue(None)`` when it does not exist."""
        errors = self.client.exceptions
        try:
            secret = self.client.get_secret_value(SecretId=self.pack_secret_name(kind, pack_id))
        except (errors.ResourceNotFoundException, errors.InvalidRequestException):
            return PackValue(None, {})  # not created yet, or deleted (and awaiting removal)
        return PackValue(secret["VersionId"], packs.decode(secret.get("SecretString")))

    def write_pack(self, kind: str, pack_id: str, base: PackValue,
                   changes: Mapping[str, dict | None]) -> tuple[PackValue, set[str]]:
        """Write ``changes`` (advertiser → entry, None: remove) made against ``base`` as the
        successor of the version read; when someone wrote first, merged into what they wrote.
        Returns the value written and the advertisers whose change was dropped."""
        name = self.pack_secret_name(kind, pack_id)
        errors = self.client.exceptions
        current = base
        for attempt in range(PACK_WRITE_ATTEMPTS):
            # the original changes against the original base, every time: a change dropped once
            # (its entry changed by someone else) stays dropped
            merged, dropped = packs.merge(base.entries, current.entries, changes)
            value = packs.encode(merged)
            if len(value.encode("utf-8")) > packs.VALUE_LIMIT:
                raise PackTooLarge()
            version = None
            try:
                if current.version is None:
                    version = self._create_secret(name, value, f"adsauth {kind} tokens of pack {pack_id}",
                                                  {"adsauth:pack": pack_id, "adsauth:kind": kind})
                else:
                    version = self.client.put_secret_value(
                        SecretId=name, SecretString=value, ClientRequestToken=successor_version(current.version)
                    )["VersionId"]
            except (errors.ResourceExistsException, errors.ResourceNotFoundException):
                pass  # someone wrote (or created) first, or the pack was deleted meanwhile: merge again
            except errors.InvalidRequestException:
                time.sleep(0.2 * (attempt + 1))  # deleted, not yet gone: its name is free in moments
            if version is not None:
                if current.version is None and kind == "refresh":
                    self._protect(name)  # as every refresh-token secret: only its readers may read it
                return PackValue(version, merged), dropped
            current = self.read_pack(kind, pack_id)
        raise RefreshTokenSuperseded()  # never in practice: each lost attempt is another writer's write

    def delete_pack(self, pack_id: str) -> None:
        """Delete both secrets of the pack at once (no recovery window); absent ones are fine."""
        for kind in PACK_NAMES:
            self._delete(self.pack_secret_name(kind, pack_id))

    # --- both ----------------------------------------------------------------------------------
    def delete_tokens(self, advertiser_id: str) -> None:
        """Delete both secrets at once, without a recovery window (a revoked grant is worthless,
        and a later re-authorization must be able to create them again)."""
        for name in (self.refresh_secret_name(advertiser_id), self.access_secret_name(advertiser_id)):
            self._delete(name)

    def _delete(self, name: str) -> None:
        try:
            self.client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        except self.client.exceptions.ResourceNotFoundException:
            pass

    def _create(self, name: str, value: dict, advertiser_id: str, kind: str) -> str | None:
        """Create an advertiser's secret; its version, or None when it exists already."""
        return self._create_secret(name, json.dumps(value), f"adsauth {kind} token of advertiser {advertiser_id}",
                                   {"adsauth:advertiser": advertiser_id, "adsauth:kind": kind})

    def _create_secret(self, name: str, text: str, description: str, tags: dict[str, str]) -> str | None:
        """Create the secret; its version, or None when it exists already."""
        key = {"KmsKeyId": self.kms_key_id} if self.kms_key_id else {}
        try:
            created = self.client.create_secret(
                Name=name,
                SecretString=text,
                Description=description,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                **key,
            )
        except self.client.exceptions.ResourceExistsException:
            return None
        return created["VersionId"]
