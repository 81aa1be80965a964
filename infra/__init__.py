"""CDK infrastructure for adsauth: configuration, Docker-free bundling and one construct per concern."""
