"""adsauth: an authorization broker for the Amazon Ads API (Login with Amazon)."""
