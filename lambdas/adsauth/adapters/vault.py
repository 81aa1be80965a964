"""Secrets Manager: one refresh-token secret and one access-token secret per advertiser.

They sit under two prefixes so IAM can let downstream read access tokens without ever reaching a
refresh token: ``<prefix>refresh/<advertiser>`` and ``<prefix>access/<advertiser>``.
"""

from __future__ import annotations

import json
from typing import Any


class SecretsManagerVault:
    def __init__(self, *, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def refresh_secret_name(self, advertiser_id: str) -> str:
        return f"{self.prefix}refresh/{advertiser_id}"

    def access_secret_name(self, advertiser_id: str) -> str:
        return f"{self.prefix}access/{advertiser_id}"

    def put_refresh_token(self, advertiser_id: str, refresh_token: str, issued_at: float) -> None:
        value = {"refresh_token": refresh_token, "issued_at": issued_at}
        self._put(self.refresh_secret_name(advertiser_id), value, advertiser_id, "refresh")

    def put_access_token(self, advertiser_id: str, access_token: str, expires_at: float) -> None:
        value = {"access_token": access_token, "expires_at": expires_at}
        self._put(self.access_secret_name(advertiser_id), value, advertiser_id, "access")

    def _put(self, name: str, value: dict, advertiser_id: str, kind: str) -> None:
        secret_string = json.dumps(value)
        errors = self.client.exceptions
        try:
            self.client.put_secret_value(SecretId=name, SecretString=secret_string)
            return
        except errors.ResourceNotFoundException:
            pass
        try:
            self.client.create_secret(
                Name=name,
                SecretString=secret_string,
                Description=f"adsauth {kind} token of advertiser {advertiser_id}",
                Tags=[
                    {"Key": "adsauth:advertiser", "Value": advertiser_id},
                    {"Key": "adsauth:kind", "Value": kind},
                ],
            )
        except errors.ResourceExistsException:
            # created concurrently by another request: write our value as the current version
            self.client.put_secret_value(SecretId=name, SecretString=secret_string)
