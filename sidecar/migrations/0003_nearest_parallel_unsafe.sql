-- am_nearest sets hnsw.ef_search, which PostgreSQL forbids during a parallel operation
-- ("cannot be set during a parallel operation"): a query calling it in a LATERAL join over
-- enough rows got a parallel plan and failed.  PARALLEL UNSAFE keeps such queries serial
-- (a k-NN search gains nothing from parallel workers anyway).
ALTER FUNCTION am_nearest(vector, integer, text[]) PARALLEL UNSAFE;
