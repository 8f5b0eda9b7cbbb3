"""hot-cache: latest quotes, last trades and top-N books per symbol in Valkey, served by batch reads."""
