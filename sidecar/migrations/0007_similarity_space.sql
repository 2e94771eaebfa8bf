-- The similarity space (sidecar/similarity/space.py): similar songs, mixes and paths search a
-- 404-d vector built from both MusiCNN models' embeddings, standardised over the library, with
-- tempo, energy and key weighted lightly.  The seed-compatible 200-d MSD embedding stays in
-- `embedding` (clustering and the seed's method use it).
--
-- mtt_embedding: the MagnaTagATune model's 200-d embedding; NULL for tracks analysed before it
--   was stored (the next analysis run analyses them again: sidecar/db/analysis.py).
-- space: the track's vector in the similarity space, built by am_space() with the statistics
--   in similarity_space; NULL until they were first fitted (sidecar/db/space.py).
ALTER TABLE embeddings ADD COLUMN IF NOT EXISTS mtt_embedding vector(200);
ALTER TABLE embeddings ADD COLUMN IF NOT EXISTS space vector(404);
-- the searched vector stays in the row, uncompressed: every k-NN candidate reads it (a row of
-- both embeddings and the space is over the TOAST threshold: the 200-d embeddings, read in
-- bulk by clustering only, are the ones moved out of line)
ALTER TABLE embeddings ALTER COLUMN space SET STORAGE PLAIN;
CREATE INDEX IF NOT EXISTS embeddings_space_hnsw_idx ON embeddings
    USING hnsw (space vector_cosine_ops) WITH (m = 16, ef_construction = 128);
-- finds the tracks still to place at once (sidecar/db/space.py)
CREATE INDEX IF NOT EXISTS embeddings_unplaced_idx ON embeddings (item_id) WHERE space IS NULL;
-- (embeddings_hnsw_cosine_idx on the 200-d embedding stays: the baseline creates it, and the
-- seed's method -- plain cosine over that embedding -- remains one query away)

-- The library's statistics the vectors are built with (one row): per block, the mean to
-- subtract and the scale to multiply by (weight / standard deviation).
CREATE TABLE IF NOT EXISTS similarity_space (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    revision     integer NOT NULL,
    tracks       integer NOT NULL,  -- fitted on this many tracks,
    mtt_tracks   integer NOT NULL,  -- this many of them with an MTT embedding
    msd_mean     vector(200) NOT NULL,
    msd_scale    vector(200) NOT NULL,
    mtt_mean     vector(200) NOT NULL,
    mtt_scale    vector(200) NOT NULL,
    tempo_mean   double precision NOT NULL,
    tempo_scale  double precision NOT NULL,
    energy_mean  double precision NOT NULL,
    energy_scale double precision NOT NULL,
    key_scale    double precision NOT NULL,
    fitted_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE similarity_space IS
    'Library statistics embeddings.space is built with (sidecar/similarity/space.py).';

-- A track's vector: [(msd - mean) * scale | (mtt - mean) * scale, or zeros without an MTT
-- embedding | tempo (log2 BPM, 120 when unknown) | normalised energy | key on the circle of
-- fifths (cos, sin; a minor key at its relative major; 0 when unknown)].
CREATE OR REPLACE FUNCTION am_space(msd vector, mtt vector, tempo double precision,
                                    energy double precision, key text, scale text,
                                    s similarity_space)
RETURNS vector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH k AS (
        SELECT 2 * pi() * (((p.pitch - 1 + CASE WHEN scale = 'minor' THEN 3 ELSE 0 END) * 7) % 12) / 12
               AS angle
        FROM (SELECT array_position(ARRAY['C','C#','D','D#','E','F','F#','G','G#','A','A#','B'],
                     CASE key WHEN 'Db' THEN 'C#' WHEN 'Eb' THEN 'D#' WHEN 'Gb' THEN 'F#'
                              WHEN 'Ab' THEN 'G#' WHEN 'Bb' THEN 'A#' ELSE key END) AS pitch) p
    )
    SELECT ((msd - s.msd_mean) * s.msd_scale)
        || coalesce((mtt - s.mtt_mean) * s.mtt_scale, array_fill(0::real, ARRAY[200])::vector)
        || ARRAY[
               (ln(CASE WHEN tempo > 0 THEN tempo ELSE 120 END) / ln(2) - s.tempo_mean) * s.tempo_scale,
               (coalesce(energy, 0) - s.energy_mean) * s.energy_scale,
               coalesce(cos(k.angle), 0) * s.key_scale,
               coalesce(sin(k.angle), 0) * s.key_scale
           ]::real[]::vector
    FROM k
$$;

-- What the similarity queries read (sidecar/similarity/store.py): the searchable tracks.
CREATE OR REPLACE VIEW similarity_vectors (item_id, vector) AS
    SELECT item_id, space FROM embeddings WHERE space IS NOT NULL;
COMMENT ON VIEW similarity_vectors IS 'Tracks in the similarity space and their vectors.';

-- am_nearest now searches the similarity space and returns its vectors.
DROP FUNCTION IF EXISTS am_nearest(vector, integer, text[]);
CREATE FUNCTION am_nearest(q vector, k integer, excluded text[] DEFAULT '{}')
RETURNS TABLE (item_id text, vector vector, distance double precision)
LANGUAGE plpgsql STABLE PARALLEL UNSAFE AS $$
BEGIN
    PERFORM set_config('hnsw.ef_search',
                       least(1000, greatest(100, k + coalesce(cardinality(excluded), 0)))::text, true);
    RETURN QUERY
        SELECT e.item_id, e.space, e.space <=> q
        FROM embeddings e
        WHERE e.space IS NOT NULL AND NOT (e.item_id = ANY(coalesce(excluded, '{}')))
        ORDER BY e.space <=> q
        LIMIT k;
END
$$;
COMMENT ON FUNCTION am_nearest(vector, integer, text[]) IS
    'k nearest tracks in the similarity space (embeddings.space) by cosine distance, with hnsw.ef_search raised to cover k (see sidecar/similarity/store.py).';
