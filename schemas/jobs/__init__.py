"""CI jobs as data: build manifests, job payloads and statuses."""
