"""The application builder for Serve config files: ``import_path: serve_app.serve_entry:app``.

``serve deploy deploy/serve.yaml`` (or ``serve run``, or a KubeRay ``RayService``) calls :func:`app` with the
config's ``args``, which Serve validates into :class:`~serve_app.settings.Settings` first: a typo or a bad
value is refused at deploy time, before any replica starts. Only the file's values count (the environment's
``RAYPROC_*`` variables are for ``rayproc serve``), so what is deployed is what the file says.

This module has no ``from __future__ import annotations``: Serve reads the parameter's annotation as a class.
"""

import logging

from serve_app.settings import Settings

log = logging.getLogger("rayproc")


def app(args: Settings):
    """The rayproc API for ``args``: paths resolved, the cluster's GCS address filled in (job drivers join it),
    and, on the first start with authentication on, the first admin token written to
    ``<data_dir>/initial-admin-token`` (mode 0600; print it once with ``rayproc initial-token``)."""
    import ray

    from serve_app.accounts import Accounts
    from serve_app.deployment import build_app

    settings = args.resolved()
    if not settings.cluster_address and ray.is_initialized():
        settings = settings.model_copy(update={"cluster_address": ray.get_runtime_context().gcs_address})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.auth_enabled:
        written = Accounts(settings.db_path).ensure_initial_admin(settings.initial_token_file)
        if written is not None:
            log.warning("rayproc: the first admin token is in %s (print it once with `rayproc initial-token`)",
                        written)
    return build_app(settings)
