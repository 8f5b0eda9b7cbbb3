"""Local bring-up of the Trade2026 mesh (supervisord, install, readiness) and the shared port table.

Kept import-light: services import ``mesh.ports`` at startup.
"""
