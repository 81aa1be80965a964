"""DynamoDB: advertisers, profiles, invitations, OAuth states, refresh leases, the audit trail
and the events outbox in one table (see ``schema``). One store object, its parts by concern:

- ``dynamo``: shared helpers and the advertiser item;
- ``advertisers``: the lifecycle transitions (``adsauth.lifecycle``) and the paged listing;
- ``invitations``: invitations and OAuth states (open a flow, claim, release);
- ``profile_items``: profiles (and their counts for the listing);
- ``refresh_items``: the due index, the dispatch lease, leases, refresh outcomes, audit trail,
  platform pause;
- ``lobby_items``: advertisers waiting to join a pack (``adsauth.packs``);
- ``outbox``: lifecycle events written with their transitions, and their relay.
"""

from __future__ import annotations

from adsauth.adapters.advertisers import AdvertiserPages, AdvertiserTransitions
from adsauth.adapters.dynamo import DynamoBase, expiry_shard, iso, iso_us
from adsauth.adapters.invitations import InvitationItems
from adsauth.adapters.lobby_items import LobbyItems
from adsauth.adapters.outbox import OutboxItems
from adsauth.adapters.profile_items import ProfileItems
from adsauth.adapters.refresh_items import DISPATCH_LEASE_KEY, PLATFORM_KEY, RefreshItems


class DynamoStore(AdvertiserTransitions, AdvertiserPages, InvitationItems, ProfileItems, RefreshItems, LobbyItems, OutboxItems,
                  DynamoBase):
    pass


__all__ = ["DISPATCH_LEASE_KEY", "DynamoStore", "PLATFORM_KEY", "expiry_shard", "iso", "iso_us"]
