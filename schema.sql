-- AudioMuse sidecar database schema, version 1 (the baseline).
--
-- Applied by `audiomuse db migrate` and at every start, under an advisory lock, inside one
-- transaction.  Every statement is idempotent (IF NOT EXISTS / OR REPLACE), so applying it
-- twice changes nothing.  Later versions live in sidecar/migrations/NNNN_name.sql and are
-- recorded in schema_migrations; never edit this file to change an existing database.

CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is STABLE (it reads a dictionary); index expressions need IMMUTABLE.  This
-- wrapper pins the dictionary, which makes it safe to declare immutable.
CREATE OR REPLACE FUNCTION am_search_text(VARIADIC parts text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, array_to_string(parts, ' '))) $$;

-- tracks: one row per audio item of the media server (Jellyfin item id, Subsonic song id,
-- or the local provider's stable hash of the file path).  Metadata is refreshed at every
-- analysis run; analysis_status says where the track is in the pipeline and
-- failure_reason says why it failed, so no track is ever lost silently.
CREATE TABLE IF NOT EXISTS tracks (
    item_id          text PRIMARY KEY,
    provider         text NOT NULL,
    title            text NOT NULL DEFAULT '',
    artist           text NOT NULL DEFAULT '',
    album            text NOT NULL DEFAULT '',
    album_artist     text NOT NULL DEFAULT '',
    album_id         text,
    track_number     integer,
    duration_s       real CHECK (duration_s IS NULL OR duration_s >= 0),
    year             integer,
    genres           text[] NOT NULL DEFAULT '{}',
    file_path        text,
    date_added       timestamptz,
    analysis_status  text NOT NULL DEFAULT 'pending'
                     CHECK (analysis_status IN ('pending', 'analyzing', 'analyzed', 'failed')),
    failure_reason   text,
    model_version    text,
    analyzed_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    search_text      text GENERATED ALWAYS AS (am_search_text(title, artist, album)) STORED,
    CHECK ((analysis_status = 'failed') = (failure_reason IS NOT NULL))
);
COMMENT ON TABLE tracks IS 'Audio items of the media server with their metadata and analysis status.';
CREATE INDEX IF NOT EXISTS tracks_album_idx ON tracks (album_id);
CREATE INDEX IF NOT EXISTS tracks_artist_idx ON tracks (lower(artist));
CREATE INDEX IF NOT EXISTS tracks_status_idx ON tracks (analysis_status);
CREATE INDEX IF NOT EXISTS tracks_search_trgm_idx ON tracks USING gin (search_text gin_trgm_ops);

-- track_analysis: what the analysis heard in a track, one row per analysed track.
-- tags / mtt_tags hold the 50 MSD and 50 MagnaTagATune tag scores (label -> score);
-- moods are the TOP_N_MOODS best tags; the six other features are in [0, 1].
CREATE TABLE IF NOT EXISTS track_analysis (
    item_id          text PRIMARY KEY REFERENCES tracks (item_id) ON DELETE CASCADE,
    tempo            real,
    key              text,
    scale            text CHECK (scale IS NULL OR scale IN ('major', 'minor')),
    energy           real,
    energy_normalized real CHECK (energy_normalized IS NULL OR energy_normalized BETWEEN 0 AND 1),
    tags             jsonb NOT NULL DEFAULT '{}',
    mtt_tags         jsonb NOT NULL DEFAULT '{}',
    moods            text[] NOT NULL DEFAULT '{}',
    danceable        real CHECK (danceable IS NULL OR danceable BETWEEN 0 AND 1),
    aggressive       real CHECK (aggressive IS NULL OR aggressive BETWEEN 0 AND 1),
    happy            real CHECK (happy IS NULL OR happy BETWEEN 0 AND 1),
    party            real CHECK (party IS NULL OR party BETWEEN 0 AND 1),
    relaxed          real CHECK (relaxed IS NULL OR relaxed BETWEEN 0 AND 1),
    sad              real CHECK (sad IS NULL OR sad BETWEEN 0 AND 1),
    features         jsonb NOT NULL DEFAULT '{}',
    model_version    text NOT NULL,
    analyzed_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE track_analysis IS 'Tempo, key, energy, tag scores and derived features of each analysed track.';

-- embeddings: the 200-d MusiCNN embedding of each analysed track, searched by cosine
-- distance through the HNSW index (new rows are searchable at once; no rebuild job).
CREATE TABLE IF NOT EXISTS embeddings (
    item_id          text PRIMARY KEY REFERENCES tracks (item_id) ON DELETE CASCADE,
    embedding        vector(200) NOT NULL,
    model_version    text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE embeddings IS 'MusiCNN track embeddings (vector(200)) for similarity search.';
CREATE INDEX IF NOT EXISTS embeddings_hnsw_cosine_idx ON embeddings
    USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);

-- tasks: background work (analysis runs, album jobs, clustering) and its progress.
-- A parent task (e.g. an analysis run) has children (one per album); status names follow
-- AudioMuse-AI so its plugins can read them.
CREATE TABLE IF NOT EXISTS tasks (
    task_id          text PRIMARY KEY,
    parent_task_id   text REFERENCES tasks (task_id) ON DELETE CASCADE,
    task_type        text NOT NULL,
    status           text NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'STARTED', 'PROGRESS', 'SUCCESS', 'FAILURE', 'REVOKED')),
    progress         smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    details          jsonb NOT NULL DEFAULT '{}',
    log              text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
COMMENT ON TABLE tasks IS 'Background tasks with parent/child structure, status, progress and log.';
CREATE INDEX IF NOT EXISTS tasks_parent_idx ON tasks (parent_task_id);
CREATE INDEX IF NOT EXISTS tasks_active_idx ON tasks (task_type, created_at DESC)
    WHERE status IN ('PENDING', 'STARTED', 'PROGRESS');

-- playlists: playlists this service created on the media server (automatic = clustering,
-- instant = chat, similar = from a similarity / mix request), so they can be replaced.
CREATE TABLE IF NOT EXISTS playlists (
    playlist_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                 text NOT NULL,
    kind                 text NOT NULL CHECK (kind IN ('automatic', 'instant', 'similar')),
    track_ids            text[] NOT NULL,
    provider             text NOT NULL,
    provider_playlist_id text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, kind, name)
);
COMMENT ON TABLE playlists IS 'Playlists created by the service and their ids on the media server.';

-- track_features: the read-only view the LLM chat may query (through the role set up by
-- sidecar/db/roles.py).  Tracks and their analysis; no embeddings, no task data.
CREATE OR REPLACE VIEW track_features AS
SELECT t.item_id, t.title, t.artist, t.album, t.album_artist, t.year, t.genres,
       t.duration_s, t.date_added,
       a.tempo, a.key, a.scale, a.energy, a.energy_normalized, a.moods, a.tags, a.mtt_tags,
       a.danceable, a.aggressive, a.happy, a.party, a.relaxed, a.sad
FROM tracks t
JOIN track_analysis a USING (item_id)
WHERE t.analysis_status = 'analyzed';
COMMENT ON VIEW track_features IS 'Analysed tracks with their features: the only relation the chat role can read.';
