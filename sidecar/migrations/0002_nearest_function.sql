-- am_nearest: the k analysed tracks nearest to a vector by cosine distance, in one statement.
--
-- pgvector returns at most hnsw.ef_search rows from an HNSW scan, so the function raises
-- ef_search (for this transaction only) to at least k plus the number of excluded ids, with a
-- floor of 100 for recall; hnsw.iterative_scan (set per connection) keeps exclusions from
-- starving the result.  Doing this inside the function saves the BEGIN / SET LOCAL / COMMIT
-- round trips a client-side transaction would need on every query.
CREATE OR REPLACE FUNCTION am_nearest(q vector, k integer, excluded text[] DEFAULT '{}')
RETURNS TABLE (item_id text, embedding vector, distance double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    PERFORM set_config('hnsw.ef_search',
                       least(1000, greatest(100, k + coalesce(cardinality(excluded), 0)))::text, true);
    RETURN QUERY
        SELECT e.item_id, e.embedding, e.embedding <=> q
        FROM embeddings e
        WHERE NOT (e.item_id = ANY(coalesce(excluded, '{}')))
        ORDER BY e.embedding <=> q
        LIMIT k;
END
$$;
COMMENT ON FUNCTION am_nearest(vector, integer, text[]) IS
    'k nearest embeddings by cosine distance, with hnsw.ef_search raised to cover k (see sidecar/similarity/store.py).';
