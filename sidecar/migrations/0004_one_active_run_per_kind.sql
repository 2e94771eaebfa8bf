-- One run of a kind at a time, atomically: at most one active top-level task per task type.
-- Before this index, "is one running?" was checked before the insert, so simultaneous starts
-- could all pass the check.  Runs left active by that race (or by a job that no longer
-- exists) are ended first, keeping the newest of each type.
UPDATE tasks t SET status = 'FAILURE', finished_at = now(), updated_at = now(),
       log = t.log || 'ended by migration 0004: another run of the same kind was active'::text
WHERE t.parent_task_id IS NULL AND t.status IN ('PENDING', 'STARTED', 'PROGRESS')
  AND EXISTS (SELECT 1 FROM tasks n WHERE n.parent_task_id IS NULL AND n.task_type = t.task_type
              AND n.status IN ('PENDING', 'STARTED', 'PROGRESS')
              AND (n.created_at, n.task_id) > (t.created_at, t.task_id));

CREATE UNIQUE INDEX IF NOT EXISTS tasks_one_active_run ON tasks (task_type)
    WHERE parent_task_id IS NULL AND status IN ('PENDING', 'STARTED', 'PROGRESS');
