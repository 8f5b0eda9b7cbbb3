"""Shared runtime used by every service: settings, logging, server bootstrap, errors, clients, the NATS bus."""
