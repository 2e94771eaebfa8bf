"""Backup and restore of the analysis: ``audiomuse export`` / ``import`` and
``GET /api/analysis/export`` / ``POST /api/analysis/import``.

* :mod:`~sidecar.backup.format`: the file (gzip JSON lines, versioned header, end line);
* :mod:`~sidecar.backup.fingerprint`: the content fingerprint that finds a file again whatever
  its id;
* :mod:`~sidecar.backup.export` / :mod:`~sidecar.backup.importer`: streaming writer and reader;
* :mod:`~sidecar.backup.model_version`: the model version an import must match.
"""
