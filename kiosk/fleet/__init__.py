"""The fleet (issue 12): a hub on PostgreSQL and cabinets that ship facts up and pull
configuration down, each cabinet still deciding alone. See docs/fleet.md."""
