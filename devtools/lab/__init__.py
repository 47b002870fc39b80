"""Local test infrastructure: systemd-nspawn lab hosts and private PostgreSQL/Redis servers."""
