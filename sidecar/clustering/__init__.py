"""Automatic playlists: evolutionary clustering of the analysed library (AudioMuse-AI's method,
without its known bugs), as pure functions over numpy arrays.

* :mod:`~sidecar.clustering.params`: every parameter of a run, validated (settings + request)
* :mod:`~sidecar.clustering.data`: score vectors and genres of the analysed tracks
* :mod:`~sidecar.clustering.sampling`: stratified sampling by genre and its perturbation
* :mod:`~sidecar.clustering.search`: explore (random parameters) and exploit (mutate elites)
* :mod:`~sidecar.clustering.models`: scaler, PCA, k-means / GMM / DBSCAN / spectral
* :mod:`~sidecar.clustering.fitness`: the weighted fitness of one run
* :mod:`~sidecar.clustering.playlists`: clusters -> playlists, and the final selection
* :mod:`~sidecar.clustering.naming`: deterministic, unique names
* :mod:`~sidecar.clustering.engine`: one run, one batch of runs

The web process imports only :mod:`~sidecar.clustering.params` (no numpy / scikit-learn).
"""
