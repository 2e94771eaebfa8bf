"""Names shared by the web processes and the workers: queues, jobs and task types.

A leaf module (no imports), so the web processes can enqueue jobs and read task types
without importing the jobs themselves (and the analysis stack behind them).

Two queues, so that a parent job can never starve its children: parents (a run that lists
the library and then waits for its children) run on the *control* queue, in slots of their
own; the children that do the work (one album each) run on the *work* queue, in the
``WORKER_MAX_JOBS`` slots.  However many parents wait, the work slots stay free for children.
"""

#: parents: runs that orchestrate and wait (one run of a kind at a time, enforced by the database)
CONTROL_QUEUE = "audiomuse:control"
#: children: the units of work (``WORKER_MAX_JOBS`` at a time per worker process)
WORK_QUEUE = "audiomuse:queue"
#: slots of the control queue per worker process (runs of different kinds may overlap)
CONTROL_MAX_JOBS = 4

#: refreshed by each worker process while it runs (arq's health check, expires after ~11 s)
HEALTH_CHECK_KEY = WORK_QUEUE + ":health-check"
CONTROL_HEALTH_CHECK_KEY = CONTROL_QUEUE + ":health-check"
HEALTH_CHECK_INTERVAL_S = 10

# jobs (arq function names) -> the queue each one runs on
RUN_ANALYSIS = "run_analysis"
ANALYZE_ALBUM = "analyze_album"
SYNC_LIBRARY = "sync_library"
RECOVER_ORPHANS = "recover_orphans"
KEEP_SPACE_FITTED = "keep_similarity_space_fitted"
KEEP_MAP_CURRENT = "keep_map_current"
RUN_CLUSTERING = "run_clustering"
CLUSTERING_BATCH = "clustering_batch"
COMPUTE_MAP = "compute_map"
JOB_QUEUES = {
    RUN_ANALYSIS: CONTROL_QUEUE,
    SYNC_LIBRARY: CONTROL_QUEUE,
    ANALYZE_ALBUM: WORK_QUEUE,
    RUN_CLUSTERING: CONTROL_QUEUE,
    CLUSTERING_BATCH: WORK_QUEUE,
    COMPUTE_MAP: WORK_QUEUE,
}

# task types (tasks.task_type)
MAIN_ANALYSIS_TASK = "main_analysis"
ALBUM_ANALYSIS_TASK = "album_analysis"
LIBRARY_SYNC_TASK = "library_sync"
MAIN_CLUSTERING_TASK = "main_clustering"
CLUSTERING_BATCH_TASK = "clustering_batch"
