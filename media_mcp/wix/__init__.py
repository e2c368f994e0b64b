"""The Wix Media v2 REST shapes and (later) the API adapter."""
